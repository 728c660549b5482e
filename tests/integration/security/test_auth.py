"""Callers authenticated and scoped, firms isolated, roles enforced, rates limited, TLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.booking.entrypoints import grpc_server as booking_grpc
from services.common._generated.booking.v1 import booking_pb2 as bpb
from services.common._generated.booking.v1 import booking_pb2_grpc
from services.common._generated.rules.v1 import rules_pb2 as rpb
from services.common._generated.rules.v1 import rules_pb2_grpc
from services.common.auth import TokenFileError, TokenStore
from services.common.ratelimit import Rate
from services.common.security import Security
from services.common.server import TlsFiles
from services.rules.adapters.ruleset_loader import Rulebook
from services.rules.entrypoints import grpc_server as rules_grpc
from services.rules.entrypoints.convert import profile_from_json
from tests.booking_env import Pair, ledger_visit, running_pair
from tests.integration.security.certs import make_pki
from tests.support import profile, uscc

TOKENS = {
    "evaluator": ("tok-evaluator-0123456789", ["rules.evaluate"]),
    "reader": ("tok-reader-0123456789abc", ["rules.read", "booking.read"]),
    "admin": ("tok-admin-0123456789abcd", ["booking.admin"]),
    "inspector": ("tok-inspector-0123456789", ["booking.inspector"]),
    "expert-E1": ("tok-expert-e1-012345678", ["booking.expert"]),
    "expert-E2": ("tok-expert-e2-012345678", ["booking.expert"]),
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def auth(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[name][0]}"),)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    entries = [
        {
            "token": tok,
            "caller": name,
            "scopes": scopes,
            **({"expert_id": name.removeprefix("expert-")} if name.startswith("expert") else {}),
        }
        for name, (tok, scopes) in TOKENS.items()
    ]
    path.write_text(json.dumps({"tokens": entries}), encoding="utf-8")
    return TokenStore.load(path)


def _rules_server(rulebook: Rulebook, security: Security) -> Iterator[grpc.Channel]:
    server, port = rules_grpc.create_server(rulebook, security=security)
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    server.stop(None)


@pytest.fixture
def rules(rulebook: Rulebook, store: TokenStore) -> Iterator[rules_pb2_grpc.RulesServiceStub]:
    for channel in _rules_server(rulebook, Security(store, Rate(1000, 1000))):
        yield rules_pb2_grpc.RulesServiceStub(channel)


def _evaluate(stub: rules_pb2_grpc.RulesServiceStub, metadata=()):  # type: ignore[no-untyped-def]
    return stub.Evaluate(
        rpb.EvaluateRequest(profile=profile_from_json(profile(1))), metadata=metadata, timeout=10
    )


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_missing_and_unknown_tokens_are_unauthenticated(rules) -> None:  # type: ignore[no-untyped-def]
    assert _code(lambda: _evaluate(rules)) == grpc.StatusCode.UNAUTHENTICATED
    bad = (("authorization", "Bearer not-a-real-token-at-all"),)
    assert _code(lambda: _evaluate(rules, bad)) == grpc.StatusCode.UNAUTHENTICATED
    wrong_scheme = (("authorization", f"Basic {TOKENS['evaluator'][0]}"),)
    assert _code(lambda: _evaluate(rules, wrong_scheme)) == grpc.StatusCode.UNAUTHENTICATED


def test_an_unknown_caller_is_unauthenticated_whatever_its_request_holds(rules) -> None:  # type: ignore[no-untyped-def]
    """Over gRPC the control-character check ran before authentication: an unknown caller
    got INVALID_ARGUMENT naming the field (over HTTP/JSON: 401). Authentication comes first
    on both; a known caller still gets the field named."""
    poisoned = rpb.EvaluateRequest(profile=profile_from_json(profile(1, name="义乌\x00化工")))
    for metadata in ((), (("authorization", "Bearer not-a-real-token-at-all"),)):
        call = lambda m=metadata: rules.Evaluate(poisoned, metadata=m, timeout=10)  # noqa: E731
        assert _code(call) == grpc.StatusCode.UNAUTHENTICATED
    known = (("authorization", f"Bearer {TOKENS['evaluator'][0]}"),)
    with pytest.raises(grpc.RpcError) as info:
        rules.Evaluate(poisoned, metadata=known, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile.name" in (info.value.details() or "")


def _refusal(stub, header: str) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        _evaluate(stub, (("authorization", header),))
    return info.value.code(), info.value.details() or ""


def test_a_token_without_the_bearer_scheme_says_the_scheme_is_missing(rules) -> None:  # type: ignore[no-untyped-def]
    token = TOKENS["evaluator"][0]
    code, message = _refusal(rules, token)  # the token alone
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "missing the 'Bearer ' scheme" in message and token not in message
    code, message = _refusal(rules, f"Basic {token}")
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "'Basic'" in message and "Bearer" in message and token not in message
    assert _refusal(rules, "Bearer not-a-real-token-at-all") == (
        grpc.StatusCode.UNAUTHENTICATED,
        "unknown bearer token",
    )
    assert _evaluate(rules, (("authorization", f"bearer {token}"),)).enterprise_id  # any case


def retry_info_seconds(error: grpc.RpcError) -> float:
    """The google.rpc.RetryInfo detail of a refusal, which must agree with retry-after."""
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status with details"
    infos = []
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            infos.append(info.retry_delay.ToTimedelta().total_seconds())
    assert len(infos) == 1, status
    trailers = dict(error.trailing_metadata() or ())
    assert float(trailers["retry-after"]) == infos[0]
    return infos[0]


def test_scopes_decide_per_method(rules) -> None:  # type: ignore[no-untyped-def]
    assert _evaluate(rules, auth("evaluator")).enterprise_id
    assert _code(lambda: _evaluate(rules, auth("reader"))) == grpc.StatusCode.PERMISSION_DENIED
    listed = rules.ListStandards(rpb.ListStandardsRequest(), metadata=auth("reader"), timeout=10)
    assert listed.standards
    upsert = rpb.UpsertEnterpriseRequest(profile=profile_from_json(profile(2)))
    assert (
        _code(lambda: rules.UpsertEnterprise(upsert, metadata=auth("evaluator"), timeout=10))
        == grpc.StatusCode.PERMISSION_DENIED
    )


def test_a_registered_firm_s_clauses_need_the_read_scope(rules) -> None:  # type: ignore[no-untyped-def]
    """An evaluate-only caller may ask what applies to a profile it sends, but not to a
    firm of the register (that would reveal the firm's kind and whether it is listed)."""
    by_profile = rpb.ListApplicableClausesRequest(profile=profile_from_json(profile(3)))
    assert rules.ListApplicableClauses(by_profile, metadata=auth("evaluator"), timeout=10).clauses
    by_id = rpb.ListApplicableClausesRequest(enterprise_id=profile(3)["enterprise_id"])
    assert (
        _code(lambda: rules.ListApplicableClauses(by_id, metadata=auth("evaluator"), timeout=10))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (  # the reader passes the scope check and reaches the (absent) register
        _code(lambda: rules.ListApplicableClauses(by_id, metadata=auth("reader"), timeout=10))
        == grpc.StatusCode.FAILED_PRECONDITION
    )


def test_health_and_reflection_need_no_token(rulebook, store) -> None:  # type: ignore[no-untyped-def]
    for channel in _rules_server(rulebook, Security(store)):
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_rate_limit_per_caller_with_retry_after(rulebook, store) -> None:  # type: ignore[no-untyped-def]
    for channel in _rules_server(rulebook, Security(store, Rate(0.01, 2))):
        stub = rules_pb2_grpc.RulesServiceStub(channel)
        _evaluate(stub, auth("evaluator"))
        _evaluate(stub, auth("evaluator"))
        with pytest.raises(grpc.RpcError) as info:
            _evaluate(stub, auth("evaluator"))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailers = dict(info.value.trailing_metadata() or ())
        assert int(trailers["retry-after"]) >= 1
        assert retry_info_seconds(info.value) >= 1  # seconds, also as google.rpc.RetryInfo
        # another caller has its own bucket
        stub.ListStandards(rpb.ListStandardsRequest(), metadata=auth("reader"), timeout=5)


def test_tls_and_mutual_tls(rulebook, store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pki = make_pki(tmp_path)
    tls = TlsFiles(pki["server"], pki["server_key"], client_ca=pki["ca"])
    server, port = rules_grpc.create_server(rulebook, security=Security(store, tls=tls))
    server.start()
    try:
        ca = pki["ca"].read_bytes()
        good = grpc.ssl_channel_credentials(
            ca, pki["client_key"].read_bytes(), pki["client"].read_bytes()
        )
        with grpc.secure_channel(f"127.0.0.1:{port}", good) as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            assert _evaluate(stub, auth("evaluator")).enterprise_id
        no_client_cert = grpc.ssl_channel_credentials(ca)
        with grpc.secure_channel(f"127.0.0.1:{port}", no_client_cert) as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            assert _code(lambda: _evaluate(stub, auth("evaluator"))) == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rules_pb2_grpc.RulesServiceStub(channel)
            assert _code(lambda: _evaluate(stub, auth("evaluator"))) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ("{", "tokens.json"),
        ('{"tokens": [{"token": "short", "caller": "x", "scopes": []}]}', "tokens[0]"),
        ('{"tokens": [{"token": "long-enough-token-123", "scopes": []}]}', "tokens[0]"),
        (
            '{"tokens": [{"token": "long-enough-token-123", "caller": "x", "scopes": ["god"]}]}',
            "unknown scopes",
        ),
    ],
)
def test_bad_tokens_files_are_named(tmp_path: Path, content: str, where: str) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenFileError) as info:
        TokenStore.load(path)
    assert where in str(info.value)


def test_tokens_are_kept_only_as_digests(store: TokenStore) -> None:
    kept = repr(store.__dict__)
    assert all(tok not in kept for tok, _ in TOKENS.values())
    assert store.lookup(TOKENS["admin"][0]).caller == "admin"  # type: ignore[union-attr]
    assert store.lookup(TOKENS["admin"][0] + "x") is None


# ---------------------------------------------------------------- booking roles


@pytest.fixture
def secured(
    tmp_path: Path, store: TokenStore
) -> Iterator[tuple[Pair, booking_pb2_grpc.BookingServiceStub]]:
    with running_pair(tmp_path) as pair:
        server, port = booking_grpc.create_server(
            pair.ctx, pair.booking_engine, security=Security(store)
        )
        server.start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pair, booking_pb2_grpc.BookingServiceStub(channel)
        server.stop(None)


def _dispatched(pair: Pair, stub: booking_pb2_grpc.BookingServiceStub, n: int) -> tuple[str, str]:
    firm = pair.register_firm(n)
    pair.expert("E1", ["fire_crowded"], ["稠城街道"])
    token = stub.IssueQrCode(
        bpb.IssueQrCodeRequest(enterprise_id=firm), metadata=auth("admin"), timeout=10
    ).token
    placed = stub.CreateOrder(pair.order_request(token, phone="13512345678"), timeout=10)
    assert not placed.expert_id  # the QR token alone reads the number and status only
    full = stub.GetOrder(
        bpb.GetOrderRequest(order_id=placed.order_id), metadata=auth("admin"), timeout=10
    )
    assert full.expert_id == "E1"
    return token, placed.order_id


def test_booking_roles(secured) -> None:  # type: ignore[no-untyped-def]
    pair, stub = secured
    token, order_id = _dispatched(pair, stub, 1)
    issue = bpb.IssueQrCodeRequest(enterprise_id=pair.register_firm(2))
    assert (
        _code(lambda: stub.IssueQrCode(issue, metadata=auth("reader"), timeout=10))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        _code(lambda: stub.GetOrder(bpb.GetOrderRequest(order_id=order_id), timeout=10))
        == grpc.StatusCode.UNAUTHENTICATED
    )  # no bearer token, no QR token, no session: no credential at all
    session = pair.sign_in(uscc(1), token)  # the firm's own calls need its session
    mine = stub.GetOrder(
        bpb.GetOrderRequest(order_id=order_id, qr_token=token), metadata=session, timeout=10
    )
    assert mine.contact_phone == "135****5678"
    assert (
        stub.GetOrder(
            bpb.GetOrderRequest(order_id=order_id), metadata=auth("admin"), timeout=10
        ).contact_phone
        == "13512345678"
    )
    visit = ledger_visit(order_id, "无台账")
    assert (
        _code(lambda: stub.RecordVisit(visit, metadata=auth("expert-E2"), timeout=10))
        == grpc.StatusCode.NOT_FOUND
    )  # not the dispatched expert: as an unknown order (reach-notfound)
    ticket = stub.RecordVisit(visit, metadata=auth("expert-E1"), timeout=10).tickets[0]
    stub.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket.ticket_id, qr_token=token, photo=bpb.Photo(content=PNG)
        ),
        metadata=session,
        timeout=10,
    )
    recheck = bpb.RecheckTicketRequest(ticket_id=ticket.ticket_id, passed=True)
    assert (
        _code(lambda: stub.RecheckTicket(recheck, metadata=auth("expert-E2"), timeout=10))
        == grpc.StatusCode.NOT_FOUND
    )  # an expert who did not find it: as an unknown ticket (reach-notfound)
    assert (
        _code(lambda: stub.RecheckTicket(recheck, metadata=auth("reader"), timeout=10))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    done = stub.RecheckTicket(recheck, metadata=auth("expert-E1"), timeout=10)
    assert done.status == bpb.TICKET_STATUS_VERIFIED


def test_inspector_rechecks_and_only_admin_cancels_for_the_authority(secured) -> None:  # type: ignore[no-untyped-def]
    pair, stub = secured
    _, order_id = _dispatched(pair, stub, 3)
    cancel = bpb.CancelOrderRequest(order_id=order_id, reason="企业停业")
    assert (
        _code(lambda: stub.CancelOrder(cancel, metadata=auth("inspector"), timeout=10))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        _code(lambda: stub.CancelOrder(cancel, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    )  # no credential at all: the firm must sign in
    cancelled = stub.CancelOrder(cancel, metadata=auth("admin"), timeout=10)
    assert cancelled.status == bpb.ORDER_STATUS_CANCELLED
    assert cancelled.history[-1].actor == "admin"
    token2, order2 = _dispatched(pair, stub, 4)
    ticket = stub.RecordVisit(
        ledger_visit(order2, "无台账"), metadata=auth("admin"), timeout=10
    ).tickets[0]
    stub.SubmitRectification(
        bpb.SubmitRectificationRequest(
            ticket_id=ticket.ticket_id, qr_token=token2, photo=bpb.Photo(content=PNG)
        ),
        metadata=pair.sign_in(uscc(4), token2),
        timeout=10,
    )
    done = stub.RecheckTicket(
        bpb.RecheckTicketRequest(ticket_id=ticket.ticket_id, passed=True),
        metadata=auth("inspector"),
        timeout=10,
    )
    assert done.history[-1].actor == "inspector"


def test_a_qr_token_reaches_only_its_own_firm(secured) -> None:  # type: ignore[no-untyped-def]
    pair, stub = secured
    token_a, order_a = _dispatched(pair, stub, 5)
    firm_b = pair.register_firm(6)
    token_b = stub.IssueQrCode(
        bpb.IssueQrCodeRequest(enterprise_id=firm_b), metadata=auth("admin"), timeout=10
    ).token
    assert (
        _code(
            lambda: stub.GetOrder(
                bpb.GetOrderRequest(order_id=order_a, qr_token=token_b), timeout=10
            )
        )
        == grpc.StatusCode.NOT_FOUND  # as an unknown order (reach-notfound)
    )
    edited = token_a.replace(token_a.split(".")[1], firm_b)  # another firm's id, old signature
    expired_key = replace(pair.ctx, keyring=type(pair.ctx.keyring)({"k9": b"z" * 32}, "k9"))
    for bad in (edited, token_a[:-1] + ("A" if token_a[-1] != "A" else "B")):
        assert (
            _code(
                lambda bad=bad: stub.GetOrder(
                    bpb.GetOrderRequest(order_id=order_a, qr_token=bad), timeout=10
                )
            )
            == grpc.StatusCode.PERMISSION_DENIED
        )
    server, port = booking_grpc.create_server(expired_key, pair.booking_engine)
    server.start()  # a server whose keyring no longer has the token's key
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            other = booking_pb2_grpc.BookingServiceStub(channel)
            assert (
                _code(
                    lambda: other.GetOrder(
                        bpb.GetOrderRequest(order_id=order_a, qr_token=token_a), timeout=10
                    )
                )
                == grpc.StatusCode.PERMISSION_DENIED
            )
    finally:
        server.stop(None)


def test_qr_only_calls_are_rate_limited_per_host_and_orders_per_token(tmp_path, store) -> None:  # type: ignore[no-untyped-def]
    from services.common.ratelimit import RateLimiter

    with running_pair(tmp_path) as pair:
        pair.expert("E1", ["fire_crowded"], ["稠城街道"], days=range(1, 15))
        ctx = replace(pair.ctx, order_limiter=RateLimiter(Rate(per_second=1 / 3600, burst=2)))
        server, port = booking_grpc.create_server(
            ctx, pair.booking_engine, security=Security(store, Rate(0.01, 6))
        )
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = booking_pb2_grpc.BookingServiceStub(channel)
                token = pair.issue(pair.register_firm(1)).token
                first = stub.CreateOrder(pair.order_request(token, key="a"), timeout=10)
                stub.CreateOrder(pair.order_request(token, key="b", days=(3, 4)), timeout=10)
                with pytest.raises(grpc.RpcError) as info:  # a third order from one QR code
                    stub.CreateOrder(pair.order_request(token, key="c", days=(5, 6)), timeout=10)
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert int(dict(info.value.trailing_metadata())["retry-after"]) >= 1
                assert retry_info_seconds(info.value) >= 1
                assert first.order_id
                codes = []
                for _ in range(6):  # QR-only calls from one host share one bucket
                    try:
                        stub.ListServiceItems(bpb.ListServiceItemsRequest(), timeout=10)
                        codes.append("OK")
                    except grpc.RpcError as exc:
                        codes.append(exc.code().name)
                        assert retry_info_seconds(exc) >= 1
                assert codes[-1] == "RESOURCE_EXHAUSTED" and "OK" not in codes[3:]
                # staff with a token have their own bucket
                stub.ListExperts(bpb.ListExpertsRequest(), metadata=auth("admin"), timeout=10)
        finally:
            server.stop(None)


def test_booking_talks_to_rules_over_mutual_tls(rulebook, store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from services.booking.adapters.rules_client import RulesClient
    from services.booking.domain.rules_service import RulesUnavailable
    from services.common.security import client_credentials

    pki = make_pki(tmp_path)
    tls = TlsFiles(pki["server"], pki["server_key"], client_ca=pki["ca"])
    server, port = rules_grpc.create_server(rulebook, security=Security(store, tls=tls))
    server.start()
    try:
        good = RulesClient(
            f"127.0.0.1:{port}",
            token=TOKENS["reader"][0],
            credentials=client_credentials(
                str(pki["ca"]), str(pki["client"]), str(pki["client_key"])
            ),
        )
        assert good.clause("GM2023:11(1)") is not None  # ListStandards/GetStandard over mTLS
        plain = RulesClient(f"127.0.0.1:{port}", token=TOKENS["reader"][0], timeout=2)
        with pytest.raises(RulesUnavailable):
            plain.warm_clauses()
        good.close()
        plain.close()
    finally:
        server.stop(None)
