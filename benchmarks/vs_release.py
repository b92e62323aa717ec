"""Same weights, same outputs: pvdm against the public release, in one run on one machine.

    python benchmarks/vs_release.py --release PATH [--threads 2] [--repeats 3] [--ddim-steps 4]
                                    [--no-write] [--write-test-data]
    python benchmarks/vs_release.py --release PATH --speed [--threads 2] [--rounds 2] [--only ROW,ROW]

PATH is a checkout of github sihyun-yu/PVDM (commit 793172f); its modules are imported from
there (release_code.py), none of its code is copied here.

With the release's own random initialisation at full size (ViTAutoencoder 16x256^2, UNet base 256)
it saves the models the way the release saves them (`torch.save(module.state_dict())`), runs
`pvdm convert` on the files, and compares on the same inputs: AE encode (`extract`), AE decode
(`decode_from_sample`), UNet epsilon with and without a condition, and a short DDIM run
(eta 1, x0 clamped) with the release's noise layout (`--set sample.noise=release`). The same
workloads are timed release / pvdm interleaved (`--repeats` rounds), so the ratio is a same-run
figure; the pvdm column also gives the share of the machine's measured fp32 matmul rate.

`--speed` times training steps, a sampling step and the AE at full size, release and pvdm in
alternating fresh processes, with peak memory and the share of the matmul rate each reaches
(benchmarks/release_speed.py); it writes the section "## Speed: pvdm vs the release, side by side".

`--write-test-data` (re)writes tests/data/release_manifest.json (keys, shapes, derived buffers of
each release model) and tests/data/release_golden.pt (release outputs of small models on
seeded inputs), the facts the CI tests check pvdm against without the release's code.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from einops import rearrange

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))
from release_code import FULL_AE, FULL_UNET, import_release  # noqa: E402
from release_files import GOLDEN, MANIFEST, SMALL_AE, SMALL_UNET, synthetic_release_state  # noqa: E402
from reporting import matmul_gflops, replace_section  # noqa: E402

SECTION = "## Same weights, same outputs: pvdm vs the release"
SPEED_SECTION = "## Speed: pvdm vs the release, side by side"


# --- the release's models (release_code.py imports its code) --------------------------------


def release_ae(rel, spec: dict):
    return rel.ViTAutoencoder(spec["embed_dim"], spec["ddconfig"]).eval()


def release_unet(rel, spec: dict):
    return rel.DiffusionWrapper(rel.UNetModel(**spec)).eval()


def release_ddim(rel, wrapper, steps: int):
    return rel.DDPM(wrapper, channels=4, image_size=32, linear_start=0.0015, linear_end=0.0195,
                    sampling_timesteps=steps, w=0.0, ddim_sampling_eta=1.0)


def release_ddim_sample(ddpm, cond, seed: int, batch: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)  # the release draws from the global generator
    with torch.no_grad():
        return ddpm.ddim_sample((batch, 4, 2048), cond)


# --- pvdm side -----------------------------------------------------------------------------


def flat(z) -> torch.Tensor:
    """pvdm Latents -> the release's (B, C, h*w + T*w + T*h) layout [xy | yt | xt]."""
    return torch.cat([p.flatten(2) for p in z], dim=-1)


def planes(x: torch.Tensor, t: int, h: int):
    from pvdm_core.models.autoencoder import Latents

    s, a = x.split([h * h, t * h * 2], dim=-1)
    zh, zw = a.split(t * h, dim=-1)
    return Latents(s.unflatten(-1, (h, h)), zh.unflatten(-1, (t, h)), zw.unflatten(-1, (t, h)))


def pvdm_ddim(unet, cond, seed: int, steps: int, t: int, h: int, batch: int = 1) -> torch.Tensor:
    from pvdm_core.diffusion.planes import FlatNoise
    from pvdm_core.diffusion.process import NoiseSchedule
    from pvdm_core.diffusion.samplers import sample_ddim

    noise = FlatNoise(torch.Generator().manual_seed(seed))
    x_T = noise.like(planes(torch.zeros(batch, 4, h * h + 2 * t * h), t, h))
    with torch.no_grad():
        z = sample_ddim(lambda x, tt: unet(x, tt, cond), x_T, NoiseSchedule.linear(), steps, 1.0, noise)
    return flat(z)


def convert(file: Path, out: Path, *extra: str) -> None:
    cmd = [sys.executable, "-m", "pvdm", "convert", str(file), "-o", str(out), *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the largest difference relative to the output's scale."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# --- the comparison ------------------------------------------------------------------------


def workloads(rel, tmp: Path, ddim_steps: int):
    """(name, release fn, pvdm fn) triples on full-size models, the pvdm side loaded from `pvdm convert`."""
    from pvdm_core.artifacts.load import load_autoencoder, load_diffusion

    torch.manual_seed(0)
    ae, wrapper = release_ae(rel, FULL_AE), release_unet(rel, FULL_UNET)
    with torch.no_grad():  # the release zero-initialises its output layers: eps would be 0 on both sides
        for p in wrapper.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    torch.save(ae.state_dict(), tmp / "model_last.pth")
    torch.save(wrapper.state_dict(), tmp / "ema_model_0.pth")
    convert(tmp / "model_last.pth", tmp / "ae")
    convert(tmp / "ema_model_0.pth", tmp / "dm", "--ae", str(tmp / "ae"))
    mine_ae = load_autoencoder(tmp / "ae", torch.device("cpu")).model
    mine_unet = load_diffusion(tmp / "dm", torch.device("cpu")).unet
    ddpm = release_ddim(rel, wrapper, ddim_steps)

    g = torch.Generator().manual_seed(1)
    video = torch.rand(1, 3, 16, 256, 256, generator=g) * 2 - 1
    z = torch.rand(1, 4, 2048, generator=g) * 2 - 1
    cond = torch.rand(1, 4, 2048, generator=g) * 2 - 1
    t = torch.tensor([500])
    pz, pc = planes(z, 16, 32), planes(cond, 16, 32)
    out_video = lambda v: rearrange(v, "(b t) c h w -> b c t h w", t=16)  # noqa: E731
    return [
        ("AE encode 16×256²", lambda: ae.extract(video), lambda: flat(mine_ae.encode(video))),
        ("AE decode 16×256²", lambda: out_video(ae.decode_from_sample(z)), lambda: mine_ae.decode(pz)),
        ("UNet-L ε, no condition", lambda: wrapper(z, None, t), lambda: flat(mine_unet(pz, t))),
        ("UNet-L ε, conditioned", lambda: wrapper(z, cond, t), lambda: flat(mine_unet(pz, t, pc))),
        (f"DDIM {ddim_steps} steps, η 1, release noise", lambda: release_ddim_sample(ddpm, None, 7),
         lambda: pvdm_ddim(mine_unet, None, 7, ddim_steps, 16, 32)),
    ]


def flops_of(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def compare(rel, repeats: int, ddim_steps: int, only: str = "") -> list[dict]:
    rate = matmul_gflops()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ref_fn, mine_fn in workloads(rel, Path(tmp), ddim_steps):
            if only and not any(part.strip() in name for part in only.split(",")):
                continue
            times = {"release": [], "pvdm": []}
            outs = {}
            for _ in range(repeats):  # interleaved: both see the same machine state
                for who, fn in (("release", ref_fn), ("pvdm", mine_fn)):
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        outs[who] = fn()
                    times[who].append(time.perf_counter() - t0)
            ref_s, mine_s = statistics.median(times["release"]), statistics.median(times["pvdm"])
            gflop = flops_of(mine_fn) / 1e9
            rows.append({"name": name, "rel_err": rel_err(outs["pvdm"], outs["release"]), "release_s": ref_s,
                         "pvdm_s": mine_s, "ratio": mine_s / ref_s, "gflop": gflop,
                         "mm_share": gflop / mine_s / rate, "matmul_gflops": rate})
            print(f"{name}: rel err {rows[-1]['rel_err']:.2e}, release {ref_s:.2f} s, pvdm {mine_s:.2f} s", flush=True)
    return rows


def table(rows: list[dict], threads: int, repeats: int) -> str:
    lines = [SECTION, "",
             f"`python benchmarks/vs_release.py --release PATH --threads {threads} --repeats {repeats}` "
             f"({time.strftime('%Y-%m-%d')}, {torch.__version__}, {threads} torch threads, fp32, batch 1, the "
             f"release's random initialisation at full size, release commit 793172f). Relative error = "
             f"max |pvdm − release| / max |release|; times are medians of {repeats} interleaved rounds "
             f"in one process; fp32 matmul rate measured in the same run: {rows[0]['matmul_gflops']:.0f} GFLOP/s.",
             "", "| workload | max rel. error | release | pvdm | pvdm ÷ release | pvdm GFLOP | share of matmul rate |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['rel_err']:.1e} | {r['release_s']:.2f} s | {r['pvdm_s']:.2f} s | "
                     f"{r['ratio']:.2f} | {r['gflop']:.0f} | {100 * r['mm_share']:.0f}% |")
    return "\n".join(lines) + "\n"


# --- facts for the CI tests ----------------------------------------------------------------


def manifest_entry(module) -> dict:
    buffers = {name for name, _ in module.named_buffers()}
    entry = {"order": [], "params": {}, "buffers": {}}
    for key, value in module.state_dict().items():
        entry["order"].append(key)
        if key in buffers:
            small = value.numel() <= 256
            entry["buffers"][key] = {"shape": list(value.shape),
                                     **({"values": value.flatten().tolist()} if small else {"fill": float(value.flatten()[0])})}
        else:
            entry["params"][key] = list(value.shape)
    return entry


def write_test_data(rel) -> None:
    torch.manual_seed(0)
    models = {"ae_full": release_ae(rel, FULL_AE), "unet_full": release_unet(rel, FULL_UNET),
              "ae_small": release_ae(rel, SMALL_AE), "unet_small": release_unet(rel, SMALL_UNET)}
    manifest = {name: manifest_entry(m) for name, m in models.items()}
    MANIFEST.parent.mkdir(exist_ok=True)
    MANIFEST.write_text(json.dumps(manifest))
    ae, wrapper = models["ae_small"], models["unet_small"]
    ae.load_state_dict(synthetic_release_state(manifest["ae_small"], seed=0))
    wrapper.load_state_dict(synthetic_release_state(manifest["unet_small"], seed=0))
    g = torch.Generator().manual_seed(1)
    video = torch.rand(1, 3, 4, 64, 64, generator=g) * 2 - 1
    z = torch.rand(2, 4, 2048, generator=g) * 2 - 1
    cond = torch.rand(2, 4, 2048, generator=g) * 2 - 1
    t = torch.tensor([999, 250])
    with torch.no_grad():
        golden = {"video": video, "latents": ae.extract(video), "recon": ae(video)[0], "z": z, "cond": cond, "t": t,
                  "eps": wrapper(z, None, t), "eps_cond": wrapper(z, cond, t)}
    ddpm = release_ddim(rel, wrapper, 3)
    golden["ddim3"] = release_ddim_sample(ddpm, None, seed=7, batch=2)
    golden["ddim3_cond"] = release_ddim_sample(ddpm, cond, seed=8, batch=2)
    torch.save(golden, GOLDEN)
    print(f"wrote {MANIFEST.relative_to(ROOT)} and {GOLDEN.relative_to(ROOT)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", type=Path, required=True, help="checkout of github sihyun-yu/PVDM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ddim-steps", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated parts of row names (e.g. UNet,DDIM; with --speed "
                    "row keys, e.g. unet_l_step,ae_encode); implies --no-write")
    ap.add_argument("--speed", action="store_true", help="side-by-side speed and memory rows (fresh processes)")
    ap.add_argument("--rounds", type=int, default=2, help="--speed: alternating release/pvdm rounds per row")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    ap.add_argument("--write-test-data", action="store_true", help="rewrite tests/data manifest and goldens")
    args = ap.parse_args()
    if not (args.release / "models" / "autoencoder" / "autoencoder_vit.py").is_file():
        sys.exit(f"{args.release} is not a checkout of the release (no models/autoencoder/autoencoder_vit.py)")
    torch.set_num_threads(args.threads)
    if args.speed:  # the measuring processes import the release themselves
        import release_speed

        rows = [r.strip() for r in args.only.split(",") if r.strip()] or list(release_speed.ROWS)
        unknown = sorted(set(rows) - set(release_speed.ROWS))
        if unknown:
            sys.exit(f"unknown --only rows {unknown}; rows: {', '.join(release_speed.ROWS)}")
        results = release_speed.measure(args.release.resolve(), rows, args.rounds, args.threads)
        text = release_speed.table(results, args.threads, args.rounds, SPEED_SECTION)
        print(text)
        if not (args.no_write or args.only):
            replace_section(HERE / "RESULTS.md", SPEED_SECTION, text)
        return
    rel = import_release(args.release.resolve())
    if args.write_test_data:
        write_test_data(rel)
        return
    text = table(compare(rel, args.repeats, args.ddim_steps, args.only), args.threads, args.repeats)
    print(text)
    if not (args.no_write or args.only):
        replace_section(HERE / "RESULTS.md", SECTION, text)


if __name__ == "__main__":
    main()
