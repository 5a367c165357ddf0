"""Tokens in the config, their lookup, the loopback rule and ``aioqueue token new``."""

from __future__ import annotations

import hmac

import pytest

from aioqueue.http import tokens
from aioqueue.http.tokens import OPEN, TokenTable, check_listen, hash_token, is_loopback
from aioqueue.cli.main import main
from aioqueue.config import TokenSettings, load_settings
from aioqueue.errors import ConfigError

HASH_A = hash_token("token-a")
HASH_B = hash_token("token-b")


def test_known_tokens_give_their_principal_and_others_none():
    table = TokenTable([
        TokenSettings(name="a", sha256=HASH_A, processes=["echo"]),
        TokenSettings(name="b", sha256=HASH_B.upper(), processes=["*"], admin=True),
    ])
    a = table.authenticate("token-a")
    assert (a.name, a.admin, a.visible_owner) == ("a", False, "a")
    assert a.may_run("echo") and not a.may_run("sleep")
    b = table.authenticate("token-b")
    assert (b.name, b.visible_owner) == ("b", None)
    assert b.may_run("anything")
    for wrong in (None, "", "token-", "token-c", HASH_A, "token-a "):
        assert table.authenticate(wrong) is None


def test_every_lookup_ends_in_a_constant_time_comparison(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(x, y):
        calls.append((x, y))
        return real(x, y)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    table = TokenTable([TokenSettings(name="a", sha256=HASH_A, processes=["*"])])
    assert table.authenticate("token-a") is not None
    assert table.authenticate("unknown") is None
    assert len(calls) == 2
    assert all(len(x) == len(y) == 64 for x, y in calls)


def test_no_tokens_means_open_to_everyone():
    table = TokenTable([])
    assert table.open
    assert table.authenticate(None) is OPEN
    assert OPEN.visible_owner is None and OPEN.may_run("x")


def test_an_empty_process_list_runs_nothing():
    principal = TokenTable([TokenSettings(name="a", sha256=HASH_A)]).authenticate("token-a")
    assert not principal.may_run("echo")


def _load(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path)


def test_tokens_as_an_array_of_tables_or_named_tables(tmp_path):
    listed = _load(tmp_path, f'[[auth.tokens]]\nname = "a"\nsha256 = "{HASH_A}"\n'
                             f'processes = ["*"]\nadmin = true\n')
    named = _load(tmp_path, f'[auth.tokens.a]\nsha256 = "{HASH_A}"\nprocesses = ["*"]\n'
                            f'admin = true\n')
    assert listed.auth.tokens == named.auth.tokens
    assert listed.auth.tokens[0].name == "a"


@pytest.mark.parametrize(("text", "words"), [
    ('[[auth.tokens]]\nname = "a"\nsha256 = "secret"\n', ["sha256", "64 hex"]),
    ('[[auth.tokens]]\nsha256 = "%s"\n' % HASH_A, ["name"]),
    ('[[auth.tokens]]\nname = "a b"\nsha256 = "%s"\n' % HASH_A, ["name"]),
    ('[[auth.tokens]]\nname = "a"\nsha256 = "%s"\n[[auth.tokens]]\nname = "a"\nsha256 = "%s"\n'
     % (HASH_A, HASH_B), ["same name", "a"]),
    ('[[auth.tokens]]\nname = "a"\nsha256 = "%s"\n[[auth.tokens]]\nname = "b"\nsha256 = "%s"\n'
     % (HASH_A, HASH_A), ["same sha256"]),
    ('[auth.tokens.a]\nname = "b"\nsha256 = "%s"\n' % HASH_A, ["tokens.a"]),
    ('[[auth.tokens]]\nname = "a"\nsha256 = "%s"\ntoken = "x"\n' % HASH_A, ["unknown key"]),
    ('[[auth.tokens]]\nname = "a"\nsha256 = "%s"\nprocesses = "*"\n' % HASH_A, ["array"]),
    ("[limits]\nmax_backlog = 0\n", ["limits", "max_backlog"]),
    ("[limits]\nrate_per_s = -1\n", ["rate_per_s"]),
])
def test_bad_token_config_names_the_file_and_the_problem(tmp_path, text, words):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert str(tmp_path / "c.toml") in caught.value.message
    for word in words:
        assert word in caught.value.message


def test_token_new_prints_a_token_and_lines_that_accept_it(tmp_path, capsys):
    assert main(["token", "new", "ci-bot", "--process", "echo", "--process", "sha256"]) == 0
    out = capsys.readouterr().out
    token = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("token: "))
    assert len(token) >= 40
    config = out.split("\n\n", 1)[1]
    assert token not in config
    settings = _load(tmp_path, config)
    principal = TokenTable(settings.auth.tokens).authenticate(token)
    assert principal.name == "ci-bot"
    assert principal.may_run("echo") and not principal.may_run("sleep")
    assert not principal.admin


def test_token_new_makes_a_different_token_each_time(capsys):
    main(["token", "new", "a", "--admin"])
    main(["token", "new", "a", "--admin"])
    tokens = [line for line in capsys.readouterr().out.splitlines() if line.startswith("token: ")]
    assert len(set(tokens)) == 2


def test_token_new_refuses_a_bad_name(capsys):
    assert main(["token", "new", 'x"y']) == 2
    assert "name" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host):
    assert is_loopback(host)
    check_listen(host, TokenTable([]))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.10", "10.0.0.1", "example.com",
                                  "localhost.example.com"])
def test_other_addresses_need_tokens(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="without tokens"):
        check_listen(host, TokenTable([]))
    check_listen(host, TokenTable([TokenSettings(name="a", sha256=HASH_A)]))
