"""The Pulumi program: stack config -> validated spec -> components -> the outputs contract.

Everything that can be wrong with the config is found before the first resource is
declared: the spec's own checks, then the contract document validated with a placeholder
password.
"""
import sys
from pathlib import Path

# Pulumi runs this directory as a script, which puts infra/ (not the project root) on
# sys.path; the root is needed for `import infra.*` and an uninstalled `backbone`.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402

from infra.outputs import contract_halves, secrets_output  # noqa: E402
from infra.program import declare  # noqa: E402
from infra.spec import SpecError, build_spec  # noqa: E402
from infra.stack_config import read_stack_config  # noqa: E402

try:
    spec = build_spec(read_stack_config(), stack=pulumi.get_stack())
    public, secret_shape = contract_halves(spec)
except SpecError as err:
    # RunError: the CLI prints the message alone, without a Python traceback.
    raise pulumi.RunError(f"invalid stack config:\n{err}") from None

passwords = declare(spec)
pulumi.export("backbone", public)
pulumi.export("backbone_secrets", secrets_output(secret_shape, passwords))
