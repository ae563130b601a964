from convtool.cli import main

main()
