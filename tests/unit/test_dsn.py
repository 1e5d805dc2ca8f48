"""Database URLs checked whole, as libpq reads them, with errors that never show the password;
and the redaction of messages and log records (issue 14, item 4)."""

from __future__ import annotations

import logging
import sys

import pytest
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from stem_pg.core.dsn import LIBPQ_KEYWORDS, split_url, validate_url
from stem_pg.core.errors import ConfigError
from stem_pg.core.redaction import RedactingFilter, redact, remember_secret

PW = "Zq9unitPw"

# (URL, what the one-line error names); every URL holds PW somewhere.
REFUSED = [
    (f"postgresql://u:{PW}%ZZ@h/db", "invalid percent-escape in the password"),
    (f"postgresql://u:{PW}%4@h/db", "invalid percent-escape in the password"),
    (f"postgresql://u:{PW}%00@h/db", "NUL character in the password"),
    (f"postgresql://u:{PW} x@h/db", "a space in the password"),
    (f"postgresql://u%ZZ:{PW}@h/db", "invalid percent-escape in the user name"),
    (f"postgresql://u:{PW}@h/db?foo=bar", "unknown query parameter 'foo'"),
    (f"postgresql://u:{PW}@h/db?ssl=false", "unknown query parameter 'ssl'"),
    (f"postgresql://u:{PW}@h/db?sslmode", "without exactly one '='"),
    (f"postgresql://u:{PW}@h/db?a=b=c", "without exactly one '='"),
    (f"postgresql://u:{PW}@h/db?&", "without exactly one '='"),
    (f"postgresql://u:{PW}@h/db?=x", "unknown query parameter"),
    (f"postgresql://u:{PW}@h/db?options=-c x", "a space in query parameter 'options'"),
    (f"postgresql://u@h/db?password={PW}%G1", "invalid percent-escape in query parameter 'password'"),
    (f"postgresql://u:{PW}@h:54x32/db", "the port must be a number"),
    (f"postgresql://u:{PW}@h:0/db", "the port must be a number"),
    (f"postgresql://u:{PW}@h/db?port=abc", "the port must be a number"),
    (f"postgresql://u:{PW}@h/db?connect_timeout=soon", "'connect_timeout' must be a whole number"),
    (f"postgresql://u:{PW}@?dbname=x&sslmode=bogus", "'sslmode' must be one of"),
    (f"postgresql://u:{PW}@[::1:5432/db", "an unterminated '[' in the host"),
    (f"postgresql://u:{PW}@h,[::1/db", "an unterminated '[' in the host"),
    (f"postgresql://u:{PW}@[]/db", "an empty IPv6 address"),
    (f"postgresql://u:{PW}@[::1]x/db", "unexpected text after ']'"),
    (f"postgresql://u:{PW}@h%ZZ/db", "invalid percent-escape in the host"),
    (f"postgresql://u:{PW}@h/d b", "a space in the database name"),
    (f"postgresql://u:{PW}@b@h/db", "an unencoded '@'"),
    (f"postgresql://u:{PW}/x@h/db", "a '/' in the user name or password"),
    (f"postgresql://u:{PW}?x@h/db", "an unencoded '?' or '#'"),
    (f"mysql://u:{PW}@h/db", "not a PostgreSQL URL (scheme 'mysql')"),
    (f"POSTGRESQL:/u:{PW}@h/db", "not a PostgreSQL URL"),
    (f"host=h password='{PW} dbname=x", "a key=value connection string is not accepted"),
    (f"host=h password={PW}", "a key=value connection string is not accepted"),
]


@pytest.mark.parametrize(("url", "named"), REFUSED)
def test_a_bad_url_is_one_line_naming_the_part_never_the_password(url: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_url(url, source="STEM_BROKER_URL")
    message = str(caught.value)
    assert message.startswith("STEM_BROKER_URL: ") and named in message, message
    assert PW not in message and PW.lower() not in message.lower()
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%40ss%2Fw%3Ford@h:5432/db",
        "postgresql://u:a:b@h/db",
        "postgresql://u:%20spaced@h/db?options=-c%20statement_timeout%3D5s",
        "postgresql://h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=read-write",
        "postgresql:///db?host=/run/postgresql",
        "postgresql://@/db",
        "postgresql://h/db?ssl=true&sslmode=require&connect_timeout=5&port=5433",
        "postgresql://h/db?%68ost=x",
        "postgresql://h/db#not-a-fragment-for-libpq",
        "postgresql://h/db?",
    ],
)
def test_good_urls_pass_as_libpq_reads_them(url: str) -> None:
    assert validate_url(url, source="url") == url
    conninfo_to_dict(url)  # libpq agrees


def test_the_query_parameters_cover_every_option_of_this_libpq() -> None:
    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    assert known <= LIBPQ_KEYWORDS, f"add to LIBPQ_KEYWORDS: {sorted(known - LIBPQ_KEYWORDS)}"


def test_split_follows_libpq() -> None:
    parts = split_url("u:p?a#s@h1:1,[::1]:2/db?sslmode=require")
    assert (parts.user, parts.password, parts.hosts, parts.ports) == ("u", "p?a#s", ("h1", "::1"), ("1", "2"))
    assert (parts.dbname, parts.query) == ("db", "sslmode=require")
    assert split_url("u:pa/ss@h/db").hosts == ("u",)  # libpq ends the user info at the first "/"


def test_a_refused_url_still_teaches_redaction_its_password() -> None:
    secret = "Zq9taughtBy%ZZbadUrl"
    with pytest.raises(ConfigError):
        validate_url(f"postgresql://u:{secret}@h/db", source="url")
    assert redact(f'invalid percent-encoded token: "{secret}"') == 'invalid percent-encoded token: "***"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=h sslpassword=abc user=u", "host=h sslpassword=*** user=u"),
        ("postgresql://h/db?password=abc&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
        ("password='unterminated and more", "password=***"),
        ("oauth_client_secret=abc", "oauth_client_secret=***"),
    ],
)
def test_redact_more_shapes(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_remembered_secrets_are_masked_anywhere_but_short_ones_are_not() -> None:
    remember_secret("Zq9remembered")
    remember_secret("pw")
    assert redact("token Zq9remembered, 'Zq9remembered'") == "token ***, '***'"
    assert redact("pw stays") == "pw stays"


def test_redacting_filter_masks_message_arguments_and_traceback() -> None:
    remember_secret("Zq9inRecord")
    try:
        raise ValueError("bad token Zq9inRecord")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "url %s pw %r", ("postgresql://u:s3@h/db", "Zq9inRecord"), None
        )
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "url postgresql://u:***@h/db pw '***'"
    text = logging.Formatter().format(record)
    assert "Zq9inRecord" not in text and "ValueError: bad token ***" in text


def test_records_without_secrets_are_left_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d jobs", (3,), None)
    RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("%d jobs", (3,))


def test_the_pooler_option_is_stem_pgs_own_and_never_reaches_libpq() -> None:
    from stem_pg.core.dsn import libpq_url, pooler

    url = "postgresql://app@pgbouncer:6432/app?sslmode=disable&stem_pooler=transaction"
    assert validate_url(url, source="STEM_BROKER_URL") == url
    assert pooler(url) == "transaction"
    assert libpq_url(url) == "postgresql://app@pgbouncer:6432/app?sslmode=disable"
    assert libpq_url("postgresql://app@h/app?stem_pooler=transaction") == "postgresql://app@h/app"
    assert conninfo_to_dict(libpq_url(url))["port"] == "6432"  # libpq takes what is left
    plain = "postgresql://app@db/app?sslmode=disable"
    assert (pooler(plain), libpq_url(plain)) == (None, plain)
    with pytest.raises(ConfigError, match="query parameter 'stem_pooler' must be one of transaction"):
        validate_url("postgresql://app@h/app?stem_pooler=session", source="STEM_BROKER_URL")
