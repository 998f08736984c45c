#!/usr/bin/env python3
"""Writes the seed inputs in fuzz/seeds/<target>/ (run from anywhere; needs `cryptography`).

Seeds only give the fuzzer a start: valid tokens, signed requests, key sets and
policies in each target's input format (see the comment at the top of each target).
"""
import base64, hashlib, hmac, json, os, pathlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

FUZZ = pathlib.Path(__file__).resolve().parent.parent
KEYS = FUZZ.parent / "tests" / "keys"
SEEDS = FUZZ / "seeds"
NOW = 1_700_000_000
JWT_SECRET = b"grpc-auth-fuzz-hs256-secret-0123456789abcdef"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def jws(header, payload, sign):
    msg = f"{b64u(json.dumps(header, separators=(',', ':')).encode())}.{b64u(json.dumps(payload, separators=(',', ':')).encode())}"
    return f"{msg}.{b64u(sign(msg.encode()))}"


def hs256(m):
    return hmac.new(JWT_SECRET, m, hashlib.sha256).digest()


def rs256(m):
    key = serialization.load_pem_private_key((KEYS / "rsa_private.pem").read_bytes(), None)
    return key.sign(m, padding.PKCS1v15(), hashes.SHA256())


def es256(m):
    key = serialization.load_pem_private_key((KEYS / "ec256_private.pem").read_bytes(), None)
    r, s = decode_dss_signature(key.sign(m, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def jwt_seeds():
    claims = {"sub": "ada", "exp": NOW + 3600, "scope": "a b", "roles": ["r"]}
    strict = {"sub": "ada", "exp": NOW + 3600, "nbf": NOW - 10, "iss": "https://issuer.example",
              "aud": ["x", "fuzz-aud"], "tenant": "t1", "scp": ["c"]}
    # Mode A: whole tokens.
    write("jwt_verify", "a_hs256", b"\x00" + jws({"alg": "HS256", "typ": "JWT"}, claims, hs256).encode())
    write("jwt_verify", "a_hs256_strict", b"\x00" + jws({"alg": "HS256", "kid": "hs"}, strict, hs256).encode())
    write("jwt_verify", "a_rs256", b"\x00" + jws({"alg": "RS256", "kid": "rs"}, claims, rs256).encode())
    write("jwt_verify", "a_es256", b"\x00" + jws({"alg": "ES256", "kid": "es"}, claims, es256).encode())
    write("jwt_verify", "a_rs256_nokid", b"\x00" + jws({"alg": "RS256"}, claims, rs256).encode())
    write("jwt_verify", "a_crit", b"\x00" + jws({"alg": "HS256", "crit": ["b64"], "b64": False}, claims, hs256).encode())
    write("jwt_verify", "a_none", b"\x00" + jws({"alg": "none"}, claims, lambda m: b"").encode())
    # Mode B: header JSON \0 payload JSON, signed by the target.
    for i, (h, p) in enumerate([
        ({"alg": "HS256", "typ": "JWT"}, claims),
        ({"alg": "HS256", "kid": "hs"}, strict),
        ({"alg": "HS256", "crit": ["exp"]}, claims),
        ({"alg": "HS256", "kid": "rs"}, claims),
        ({"alg": "RS256"}, claims),
        ({"alg": "HS256"}, {"sub": 5, "exp": 1.5e9}),
        ({"alg": "HS256"}, {"sub": "x", "exp": NOW - 61, "nbf": NOW + 61}),
    ]):
        write("jwt_verify", f"b_{i}", b"\x01" + json.dumps(h).encode() + b"\x00" + json.dumps(p).encode())
    # Mode C: canonical header (bits 6-7), payload only.
    for i, p in enumerate([claims, strict, {"sub": "a", "exp": NOW, "scp": "x y", "aud": "fuzz-aud"}]):
        write("jwt_verify", f"c_{i}", bytes([0x21 | (i << 6)]) + json.dumps(p).encode())


def hmac_seeds():
    def entry(flags, kid_sel, off, misc, lines):
        return bytes([flags, kid_sel]) + off.to_bytes(2, "little", signed=True) + bytes([misc]) + "\n".join(lines).encode()
    write("hmac", "s_default", entry(0x01, 0, 0, 0, ["(request-target) date", "/helloworld.Greeter/SayHello"]))
    write("hmac", "s_nonce", entry(0x11, 1, -299, 0, ["(request-target) date x-nonce", "/a.B/C?q=1", "", "x-nonce:abc"]))
    write("hmac", "s_aux", entry(0x41 | 0x08, 0, 300, 0x04, ["Date (Request-Target)", "/a.B/C"]))
    write("hmac", "s_b_date_only", entry(0x81 | 0x0c, 0, 5, 0x08, ["", "/a.B/C"]))
    write("hmac", "s_b_sha512", entry(0x81 | 0x08 | 0x30, 3, 0, 0x10, ["date", "/a.B/C", "k2"]))
    write("hmac", "s_wrong_key", entry(0x03, 0, 0, 0, ["(request-target) date", "/a.B/C"]))
    write("hmac", "a_sig", b"\x00" + b'Signature keyId="k1",algorithm="hmac-sha256",headers="(request-target) date",signature="c2lnbmF0dXJl"\nTue, 14 Nov 2023 22:13:20 GMT\n\n/helloworld.Greeter/SayHello\nx-nonce:1')
    write("hmac", "a_url", b"\x02" + b'Signature keyId="k2",algorithm="hmac-sha1",signature="YWJj%3D"\n\nTue, 14 Nov 2023 22:13:20 GMT')


def basic_seeds():
    write("basic", "raw_ada", b"\x00Basic " + base64.b64encode(b"ada:lovelace"))
    write("basic", "raw_bad", b"\x00basic " + base64.b64encode(b"ada:wrong"))
    write("basic", "raw_bearer", b"\x00Bearer abc")
    write("basic", "s_bob", b"\x01bob\x00pa:ss word")
    write("basic", "s_utf8", b"\x01" + "\u00fcn\u00ef".encode() + b"\x00" + "\u00e7\u00f8d\u00e9".encode())
    write("basic", "s_nopad", b"\x05ada\x00lovelace")


def jwk_rsa(path, kid):
    pub = serialization.load_pem_public_key((KEYS / path).read_bytes()).public_numbers()
    n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "kid": kid, "n": b64u(n), "e": b64u(pub.e.to_bytes(3, "big"))}


def jwk_ec(path, kid, crv, size):
    pub = serialization.load_pem_public_key((KEYS / path).read_bytes()).public_numbers()
    return {"kty": "EC", "kid": kid, "crv": crv, "x": b64u(pub.x.to_bytes(size, "big")), "y": b64u(pub.y.to_bytes(size, "big"))}


def jwks_seeds():
    rsa = jwk_rsa("rsa_public.pem", "r1")
    ec256 = jwk_ec("ec256_public.pem", "e1", "P-256", 32)
    ec384 = jwk_ec("ec384_public.pem", "e2", "P-384", 48)
    ed = serialization.load_pem_public_key((KEYS / "ed25519_public.pem").read_bytes())
    okp = {"kty": "OKP", "crv": "Ed25519", "kid": "d1",
           "x": b64u(ed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}
    oct_ = {"kty": "oct", "kid": "h1", "k": b64u(b"secret-secret-secret"), "alg": "HS256"}
    sets = {
        "all": [rsa, dict(rsa, alg="PS256", kid="r2"), ec256, ec384, okp, oct_],
        "use": [dict(rsa, use="enc"), dict(ec256, key_ops=["sign"]), dict(ec384, use="sig", key_ops=["verify"])],
        "mismatch": [dict(ec256, alg="ES384"), dict(rsa, alg="HS256"), dict(okp, alg="EdDSA")],
        "one": [rsa],
    }
    for name, keys in sets.items():
        write("jwks_json", name, json.dumps({"keys": keys}))
    write("jwks_json", "not_a_set", '{"keys": {}}')


def discovery_seeds():
    write("discovery_json", "ok", '{"issuer":"https://idp.example","jwks_uri":"https://idp.example/jwks.json"}')
    write("discovery_json", "http", '{"issuer":"https://idp.example","jwks_uri":"http://idp.example/jwks.json"}')
    write("discovery_json", "cc", "public, max-age=300\nno-cache\nMax-Age = \"120\" , must-revalidate")


def policy_seeds():
    write("policy_patterns", "p1", b"\x00/grpc.health.v1.Health/*\n\x02/helloworld.Greeter/SayHelloAdmin\tgreeter.admin\n"
          b"\x04internal.Debug\n\x03/a.B/\trole\n\xf0/grpc.health.v1.Health/Check\n\xf0/helloworld.Greeter/SayHelloAdmin")
    write("policy_patterns", "p2", b"\x06\n\x05/\tx\n\x01*\n\xf0/x\n\xf0")


def authorization_seeds():
    write("authorization", "bearer", b"\x00Bearer abc.def")
    write("authorization", "two", b"\x00Bearer a\nBearer b")
    write("authorization", "tabs", b"\x05 \tBasic\t \tYWRh \t")
    write("authorization", "alone", b"\x00Bearer")


if __name__ == "__main__":
    jwt_seeds(); hmac_seeds(); basic_seeds(); jwks_seeds(); discovery_seeds(); policy_seeds(); authorization_seeds()
    for d in sorted(SEEDS.iterdir()):
        print(d.name, len(list(d.iterdir())))
