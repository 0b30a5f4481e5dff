#!/usr/bin/env python3
"""A small, independent C2SP signed-note implementation (Ed25519 only), for interop tests.

Written from the specification (https://c2sp.org/signed-note), not from the Rust code, so
that the two implementations can check each other.

Usage:
    signed_note.py key NAME SEED_HEX       print the verifier key <name>+<id>+<base64 key>
    signed_note.py sign NAME SEED_HEX      sign the text read from stdin; print the note
    signed_note.py verify VERIFIER_KEY     verify the note read from stdin; print its text

Exit status: 0 success, 1 note or key rejected (reason on stderr), 2 usage error,
3 the `cryptography` package is missing.
"""

import base64
import hashlib
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError:
    sys.stderr.write(
        "signed_note.py needs the Python 'cryptography' package: pip install cryptography\n"
    )
    sys.exit(3)

ED25519 = b"\x01"
SIG_PREFIX = "\u2014 "  # EM DASH, space
MAX_SIGNATURES = 100

# Unicode White_Space (the property "Unicode spaces" refers to).
WHITE_SPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
    + list(range(0x2000, 0x200B))
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

BASE64_RE = re.compile(r"\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


class Rejected(Exception):
    pass


def valid_name(name):
    return (
        name != ""
        and "+" not in name
        and not any(ord(c) in WHITE_SPACE or ord(c) < 0x20 for c in name)
    )


def b64decode(s):
    """Standard padded base64, canonical only (the re-encoding must give the same string)."""
    if not BASE64_RE.match(s):
        raise Rejected("not padded standard base64")
    raw = base64.b64decode(s, validate=True)
    if base64.b64encode(raw).decode("ascii") != s:
        raise Rejected("non-canonical base64")
    return raw


def key_id(name, public_key):
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519 + public_key).digest()[:4]


def private_key(seed_hex):
    seed = bytes.fromhex(seed_hex)
    if len(seed) != 32:
        raise SystemExit("seed must be 32 bytes of hex")
    return Ed25519PrivateKey.from_private_bytes(seed)


def raw_public(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def verifier_key(name, seed_hex):
    public = raw_public(private_key(seed_hex))
    return "%s+%s+%s" % (
        name,
        key_id(name, public).hex(),
        base64.b64encode(ED25519 + public).decode("ascii"),
    )


def check_text(text):
    if not text.endswith("\n"):
        raise Rejected("text does not end with a newline")
    for c in text:
        if ord(c) < 0x20 and c != "\n":
            raise Rejected("control character U+%04X" % ord(c))


def sign(name, seed_hex, text):
    if not valid_name(name):
        raise Rejected("invalid key name")
    check_text(text)
    key = private_key(seed_hex)
    signature = key.sign(text.encode("utf-8"))
    payload = key_id(name, raw_public(key)) + signature
    return "%s\n%s%s %s\n" % (text, SIG_PREFIX, name, base64.b64encode(payload).decode("ascii"))


def parse_verifier_key(vkey):
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise Rejected("verifier key is not name+id+key")
    name, id_hex, key_b64 = parts
    if not valid_name(name):
        raise Rejected("invalid key name in verifier key")
    if not re.fullmatch(r"[0-9a-f]{8}", id_hex):
        raise Rejected("key id is not 8 lowercase hex digits")
    material = b64decode(key_b64)
    if len(material) != 33 or material[:1] != ED25519:
        raise Rejected("not an Ed25519 verifier key")
    public = material[1:]
    if key_id(name, public).hex() != id_hex:
        raise Rejected("key id does not match key")
    return name, bytes.fromhex(id_hex), Ed25519PublicKey.from_public_bytes(public)


def verify(vkey, note):
    name, kid, public = parse_verifier_key(vkey)
    if not note.endswith("\n"):
        raise Rejected("note does not end with a newline")
    for c in note:
        if ord(c) < 0x20 and c != "\n":
            raise Rejected("control character U+%04X" % ord(c))
    split = note.rfind("\n\n")
    if split < 0:
        raise Rejected("no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    lines = block.split("\n")[:-1]  # block ends with "\n"
    if not lines:
        raise Rejected("no signatures")
    if len(lines) > MAX_SIGNATURES:
        raise Rejected("too many signatures")
    verified = 0
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise Rejected("signature line does not start with an em dash and a space")
        sig_name, sep, encoded = line[len(SIG_PREFIX) :].partition(" ")
        if not sep or not valid_name(sig_name):
            raise Rejected("malformed signature line")
        payload = b64decode(encoded)
        if len(payload) < 5:
            raise Rejected("signature too short")
        if sig_name != name or payload[:4] != kid:
            continue  # somebody else's signature
        try:
            if len(payload) != 4 + 64:
                raise InvalidSignature()
            public.verify(payload[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise Rejected("signature by %s does not verify" % name)
        verified += 1
    if verified == 0:
        raise Rejected("not signed by %s" % name)
    return text


def read_stdin():
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("input is not UTF-8")


def main(argv):
    try:
        if len(argv) == 3 and argv[0] == "key":
            out = verifier_key(argv[1], argv[2]) + "\n"
        elif len(argv) == 3 and argv[0] == "sign":
            out = sign(argv[1], argv[2], read_stdin())
        elif len(argv) == 2 and argv[0] == "verify":
            out = verify(argv[1], read_stdin())
        else:
            sys.stderr.write(__doc__)
            return 2
    except Rejected as e:
        sys.stderr.write("rejected: %s\n" % e)
        return 1
    sys.stdout.buffer.write(out.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
