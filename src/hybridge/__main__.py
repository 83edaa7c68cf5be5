from hybridge.cli.main import main

main()
