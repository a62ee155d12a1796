from twinserve.cli import main

raise SystemExit(main())
