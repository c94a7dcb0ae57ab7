"""`pulumi up` runs this directory as a script: it runs the program (infra/program.py)."""
import sys
from pathlib import Path

# Pulumi runs this directory as a script, which puts infra/ (not the project root) on
# sys.path; the root is needed for `import infra.*` and an uninstalled `backbone`.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from infra.program import main  # noqa: E402

main()
