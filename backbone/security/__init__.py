"""Security readiness: per service, the `tls` check (a real handshake verified with the
contract's CA: chain, host name, protocol, days to expiry) and the `exposure` check (what an
outsider would try, each attempt for real); `security_checks` gives both to `validate`."""
from .plan import security_checks

__all__ = ["security_checks"]
