#!/usr/bin/python3
"""Test SMTP sink (Debian's python3-aiosmtpd): 127.0.0.1:PORT; each accepted mail is written to
DIR/mail-N.json as {"from", "to", "data"} (data: the message as received). AUTH is offered
without TLS (auth_require_tls=False) and any user/password is accepted and logged to
DIR/auth.log. A file DIR/reject makes RCPT fail with 550 (to test a refused recipient).
Runs until killed."""
import json, os, sys, time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, state = int(sys.argv[1]), sys.argv[2]
count = [0]


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if os.path.exists(os.path.join(state, "reject")):
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        count[0] += 1
        path = os.path.join(state, "mail-%d.json" % count[0])
        data = envelope.original_content or envelope.content
        with open(path + ".tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "data": data.decode("utf-8", "replace")}, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    with open(os.path.join(state, "auth.log"), "a") as f:
        f.write(json.dumps({"mechanism": mechanism,
                            "login": auth_data.login.decode() if auth_data.login else "",
                            "password": auth_data.password.decode() if auth_data.password else ""}) + "\n")
    return AuthResult(success=True)


c = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
               auth_require_tls=False, auth_required=False)
c.start()
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
