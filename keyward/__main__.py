from keyward.cli import main

main()
