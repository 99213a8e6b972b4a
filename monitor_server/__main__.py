from monitor_server.cli import main

main()
