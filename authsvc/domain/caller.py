"""Who is asking, as the domain sees it (for the audit log and the throttle)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Both values are already sanitised by the transport."""

    client_addr: str | None = None
    user_agent: str | None = None

    def audit(self) -> dict[str, str | None]:
        """The audit-row columns this caller fills."""
        return {"client_addr": self.client_addr, "user_agent": self.user_agent}


NOBODY = Caller()  # the CLI and other in-process administration
