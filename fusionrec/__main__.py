from fusionrec.cli import main

raise SystemExit(main())
