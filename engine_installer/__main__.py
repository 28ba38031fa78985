from engine_installer.cli import main

raise SystemExit(main())
