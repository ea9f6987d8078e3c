from edge.run import main

raise SystemExit(main())
