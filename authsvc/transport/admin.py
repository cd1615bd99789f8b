"""The UserAdmin servicer. Every method needs an access token with scope
``authsvc.admin``, checked at the door (``transport.door``)."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..domain.accounts.admin import Accounts, SessionRow, selector
from ..domain.accounts.identifiers import Identifier
from ..domain.accounts.user_import import Outcome, UserImport
from ..domain.factors.otp import Factors
from ..errors import InvalidArgument
from ..v1 import user_admin_pb2, user_admin_pb2_grpc

USER_ADMIN_SERVICE = user_admin_pb2.DESCRIPTOR.services_by_name["UserAdmin"].full_name


MAX_IMPORT_LINES = 1000  # per ImportUsers call: one transaction


class UserAdminServicer(user_admin_pb2_grpc.UserAdminServicer):
    def __init__(self, accounts: Accounts, factors: Factors, user_import: UserImport) -> None:
        self._accounts = accounts
        self._factors = factors
        self._import = user_import

    async def CreateUser(self, request: user_admin_pb2.CreateUserRequest,
                         context: grpc.aio.ServicerContext,
                         ) -> user_admin_pb2.CreateUserResponse:
        kind = request.WhichOneof("identifier")
        user_id = await self._accounts.add(kind, getattr(request, kind) if kind else "",
                                           request.password, tuple(request.scopes))
        return user_admin_pb2.CreateUserResponse(user_id=user_id)

    async def DisableUser(self, request: user_admin_pb2.DisableUserRequest,
                          context: grpc.aio.ServicerContext,
                          ) -> user_admin_pb2.DisableUserResponse:
        user_id = await self._accounts.disable(_user(request))
        return user_admin_pb2.DisableUserResponse(user_id=user_id)

    async def SetPassword(self, request: user_admin_pb2.SetPasswordRequest,
                          context: grpc.aio.ServicerContext,
                          ) -> user_admin_pb2.SetPasswordResponse:
        user_id = await self._accounts.set_password(_user(request), request.password)
        return user_admin_pb2.SetPasswordResponse(user_id=user_id)

    async def ListSessions(self, request: user_admin_pb2.ListSessionsRequest,
                           context: grpc.aio.ServicerContext,
                           ) -> user_admin_pb2.ListSessionsResponse:
        rows = await self._accounts.list_sessions(_user(request))
        return user_admin_pb2.ListSessionsResponse(sessions=[_session(r) for r in rows])

    async def RevokeSession(self, request: user_admin_pb2.RevokeSessionRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> user_admin_pb2.RevokeSessionResponse:
        await self._accounts.revoke_session(request.session_id)
        return user_admin_pb2.RevokeSessionResponse()

    async def SetScopes(self, request: user_admin_pb2.SetScopesRequest,
                        context: grpc.aio.ServicerContext) -> user_admin_pb2.SetScopesResponse:
        user_id, scopes = await self._accounts.change_scopes(
            _user(request), add=tuple(request.add), remove=tuple(request.remove))
        return user_admin_pb2.SetScopesResponse(user_id=user_id, scopes=scopes)

    async def ResetFactors(self, request: user_admin_pb2.ResetFactorsRequest,
                           context: grpc.aio.ServicerContext,
                           ) -> user_admin_pb2.ResetFactorsResponse:
        user_id = await self._factors.reset(_user(request))
        return user_admin_pb2.ResetFactorsResponse(user_id=user_id)

    async def ImportUsers(self, request: user_admin_pb2.ImportUsersRequest,
                          context: grpc.aio.ServicerContext,
                          ) -> user_admin_pb2.ImportUsersResponse:
        if not 1 <= len(request.lines) <= MAX_IMPORT_LINES:
            raise InvalidArgument("lines", f"must hold 1 to {MAX_IMPORT_LINES} lines")
        outcomes: list[Outcome] = []
        totals = await self._import.run(list(request.lines), dry_run=request.dry_run,
                                        allow_weak=request.allow_weak_hashes,
                                        report=outcomes.append, batch_size=MAX_IMPORT_LINES)
        return user_admin_pb2.ImportUsersResponse(
            created=totals.created, skipped=totals.skipped, refused=totals.refused,
            weak_refused=totals.weak_refused, weak_created=totals.weak_created,
            outcomes=[user_admin_pb2.ImportOutcome(
                line=o.line, external_id=o.external_id or "", outcome=o.outcome,
                field=o.field or "", reason=o.reason or "")
                for o in sorted(outcomes, key=lambda o: o.line)])


def _user(request: user_admin_pb2.DisableUserRequest | user_admin_pb2.SetPasswordRequest
          | user_admin_pb2.ListSessionsRequest | user_admin_pb2.SetScopesRequest
          | user_admin_pb2.ResetFactorsRequest,
          ) -> Identifier | str:
    kind = request.WhichOneof("user")
    return selector(kind, getattr(request, kind) if kind else "")


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _session(row: SessionRow) -> user_admin_pb2.Session:
    session = user_admin_pb2.Session(
        session_id=row.id, user_id=row.user_id, created_at=_timestamp(row.created_at),
        expires_at=_timestamp(row.expires_at), last_used_at=_timestamp(row.last_used_at),
        client_addr=row.client_addr or "", user_agent=row.user_agent or "")
    if row.revoked_at is not None:
        session.revoked_at.CopyFrom(_timestamp(row.revoked_at))
    return session
