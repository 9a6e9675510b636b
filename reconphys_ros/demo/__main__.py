"""`python -m reconphys_ros.demo`: see cli.py."""
from reconphys_ros.demo.cli import main

raise SystemExit(main())
