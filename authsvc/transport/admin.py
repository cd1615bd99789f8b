"""The UserAdmin servicer. Every method needs an access token with scope
``authsvc.admin``, checked at the door (``transport.door``)."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..domain.accounts.admin import Accounts, SessionRow, selector
from ..domain.accounts.identifiers import Identifier
from ..domain.factors.otp import Factors
from ..v1 import user_admin_pb2, user_admin_pb2_grpc

USER_ADMIN_SERVICE = user_admin_pb2.DESCRIPTOR.services_by_name["UserAdmin"].full_name


class UserAdminServicer(user_admin_pb2_grpc.UserAdminServicer):
    def __init__(self, accounts: Accounts, factors: Factors) -> None:
        self._accounts = accounts
        self._factors = factors

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
