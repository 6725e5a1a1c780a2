from cloudsync_relay.cli import main

raise SystemExit(main())
