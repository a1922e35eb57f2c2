from mrsmon.cli import main

raise SystemExit(main())
