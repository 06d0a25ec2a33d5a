"""A real SMTP server on loopback (aiosmtpd) standing for the remote mail server in tests.

Prints `LISTENING <port>` once it accepts connections, then one JSON line per message it
takes: its envelope, its raw text, and the login it came with. Recipients choose the answer:
an address starting with `defer` gets 451 (try again later), one starting with `reject` 550.
With `--auth USER:PASSWORD` it offers AUTH (over plain text, as a loopback test may) and
refuses other logins.
"""

import argparse
import asyncio
import json
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("defer"):
            return "451 4.3.0 Mailbox busy, try again later"
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "login": login,
        }
        print(json.dumps(record), flush=True)
        return "250 2.0.0 Ok: queued"


def authenticator(expected):
    user, password = expected.split(":", 1)

    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            if auth_data.login.decode() == user and auth_data.password.decode() == password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    return check


async def serve(args):
    options = {}
    if args.auth:
        options = {"authenticator": authenticator(args.auth), "auth_require_tls": False}
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="127.0.0.1", **options), "127.0.0.1", args.port
    )
    port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)
    # Runs until the test closes stdin (or ends).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
