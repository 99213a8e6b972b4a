from monitor_server.launch import main

main()
