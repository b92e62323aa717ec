from pvdm_cli.main import main

main()
