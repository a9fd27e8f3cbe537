"""Failed sign-ins: counted per (user, address) and per address, with an injected clock (never a sleep)."""

from __future__ import annotations

from hub.security.lockout import SignInThrottle, client_key


def test_one_address_locks_only_itself_out_for_that_user() -> None:
    now = [1000.0]
    throttle = SignInThrottle(per_user=3, per_address=10, window=900.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.check("alice", "10.0.0.66") is None
        throttle.failed("alice", "10.0.0.66")
        now[0] += 10.0
    locked = throttle.check("alice", "10.0.0.66")
    assert locked is not None and locked.scope == "user"
    assert locked.retry_after == 900.0 - 30.0  # the oldest failure turns 900 s old then
    assert locked.message("alice") == ("Too many failed sign-ins for alice from your address: try again in 15 "
                                       "minutes. Sign-ins from elsewhere are not affected.")
    assert throttle.check("alice", "10.0.0.7") is None  # alice herself, elsewhere
    assert throttle.check("bob", "10.0.0.66") is None  # the same address, another user
    # Refused attempts count nothing: the lock ends when the failures age, not later.
    for _ in range(50):
        assert throttle.check("alice", "10.0.0.66") is not None
    now[0] += locked.retry_after - 1
    assert throttle.check("alice", "10.0.0.66").retry_after == 1.0  # type: ignore[union-attr]
    assert throttle.check("alice", "10.0.0.66").message("alice").startswith(  # type: ignore[union-attr]
        "Too many failed sign-ins for alice from your address: try again in 1 second.")
    now[0] += 1
    assert throttle.check("alice", "10.0.0.66") is None


def test_an_address_spraying_user_names_waits_for_all_of_them() -> None:
    now = [0.0]
    throttle = SignInThrottle(per_user=5, per_address=4, window=60.0, clock=lambda: now[0])
    for name in ("a", "b", "c", "d"):
        throttle.failed(name, "192.0.2.9")
    locked = throttle.check("root", "192.0.2.9")
    assert locked is not None and locked.scope == "address" and locked.retry_after == 60.0
    assert locked.message("root") == "Too many failed sign-ins from your address: try again in 60 seconds."
    assert throttle.check("root", "192.0.2.10") is None
    # A right password clears that user's count from there, not the address's own.
    throttle.succeeded("a", "192.0.2.9")
    assert throttle.check("a", "192.0.2.9") is not None
    now[0] = 60.0
    assert throttle.check("a", "192.0.2.9") is None


def test_a_right_password_clears_the_pair() -> None:
    throttle = SignInThrottle(per_user=2, per_address=100, window=60.0, clock=lambda: 5.0)
    throttle.failed("alice", "::1")
    throttle.succeeded("alice", "::1")
    throttle.failed("alice", "::1")
    assert throttle.check("alice", "::1") is None  # one failure since the success, not two


def test_addresses_are_counted_by_what_a_client_can_change() -> None:
    # An IPv6 host picks from its /64 at will; an IPv4-mapped address is its IPv4 address.
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown"
    now = [0.0]
    throttle = SignInThrottle(per_user=2, per_address=100, window=60.0, clock=lambda: now[0])
    throttle.failed("alice", "2001:db8:1:2::1")
    throttle.failed("alice", "2001:db8:1:2::2")
    assert throttle.check("alice", "2001:db8:1:2::3") is not None


def test_memory_stays_bounded_under_made_up_names() -> None:
    now = [0.0]
    throttle = SignInThrottle(per_user=3, per_address=10**6, window=60.0, clock=lambda: now[0], max_keys=100)
    for i in range(1000):
        throttle.failed(f"user{i}", "203.0.113.5")
        now[0] += 0.001
    assert len(throttle._pairs) <= 100
    throttle.failed("alice", "203.0.113.5")
    throttle.failed("alice", "203.0.113.5")
    throttle.failed("alice", "203.0.113.5")
    assert throttle.check("alice", "203.0.113.5") is not None  # the newest counts are the ones kept
