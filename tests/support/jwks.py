"""Real signing keys, and a local HTTP server that publishes their JWKS, for the auth tests."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "http://127.0.0.1:3000"
AUDIENCE = "http://127.0.0.1:3000"


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    @classmethod
    def generate(cls, kid: str, algorithm: str) -> "SigningKey":
        private: Any
        if algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid, algorithm, private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.algorithm == "EdDSA":
            exported = OKPAlgorithm.to_jwk(public)
        elif self.algorithm == "ES256":
            exported = ECAlgorithm.to_jwk(public)
        else:
            exported = RSAAlgorithm.to_jwk(public)
        data: dict[str, Any] = json.loads(exported)
        return {**data, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header}
        )


def claims(sub: str = "alice", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 900, **overrides}


@dataclass
class JWKSServer:
    keys: list[SigningKey] = field(default_factory=list)
    requests: int = 0  # counted as each request arrives, before its answer is made
    url: str = ""
    max_age: int | None = None  # Cache-Control: max-age of the answers, when set
    failing: bool = False  # answer 503 instead of the keys

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [*self.keys, *keys]

    def withdraw(self, *keys: SigningKey) -> None:
        self.keys = [key for key in self.keys if key not in keys]


def jwks_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api/auth/jwks"


@contextmanager
def serve_jwks(
    *keys: SigningKey, port: int = 0, max_age: int | None = None
) -> Iterator[JWKSServer]:
    """Publish the keys on 127.0.0.1:port (a free port by default) while the block runs."""
    state = JWKSServer(list(keys), max_age=max_age)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if state.failing:
                self.send_error(503)
                return
            body = json.dumps({"keys": [key.jwk() for key in state.keys]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if state.max_age is not None:
                self.send_header("Cache-Control", f"public, max-age={state.max_age}")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state.url = jwks_url(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
