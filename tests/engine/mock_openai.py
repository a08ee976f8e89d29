#!/usr/bin/env python3
"""mock_openai.py - a local OpenAI-compatible endpoint for pwb's tests.

    python3 mock_openai.py [--port N]

Serves POST /v1/chat/completions (any path ending in /chat/completions)
over a real socket, as JSON or as a server-sent event stream (chunked,
each event split in two writes, with keep-alive comments), and
GET /count?model=M, the number of chat requests seen for model M, and
GET /last?model=M, the JSON body of the last one (404 before any). With
port 0 (the default) it picks a free port and prints it on stdout line 1.

The text of candidate k of a request is deterministic in its seed,
seed + k: "s<seed>" and then words drawn from the seed, one per token,
up to max_tokens (finish "length") or 12 words (finish "stop"). Stop
strings are honoured: the text ends before the first one. Usage is
counted in words.

The model name chooses how it behaves: flags joined by '+', then
optionally '/' and a tag that only makes the name (and its request count)
unique, e.g. "echo+crlf/t7". Flags:

  echo             the text is the last user message, in pieces of 3 bytes
  reply:TEXT       the text is TEXT, URL-decoded (reply:unsafe%0AS1)
  ignore-n         one choice, whatever n asked
  ignore-stop      stop strings are not applied
  ignore-stream    answer JSON even when a stream was asked for
  crlf             event lines end in \\r\\n
  multiline        each event's JSON spread over several data: lines
  fail500:K        the first K requests answer HTTP 500, quoting the
                   Authorization header they got
  status:S         every request answers HTTP S with an error message
  retry-after:S    the first request answers 429 with Retry-After: S
  slow:MS          wait MS milliseconds before answering
  malformed-json   a 200 answer whose JSON is cut short
  sse-cut          the event stream ends mid-event (the HTTP body ends well)
  sse-drop         the connection drops mid-event (the HTTP body is cut)
  sse-garbage      an event whose data is not JSON, after some good ones
  sse-error        an {"error": ...} event, after some good ones
  no-choices       an answer without choices
  huge             an answer of 17 MiB
  key              requires "Authorization: Bearer $MOCK_OPENAI_KEY"; else
                   401 with a message that quotes the header it got
  replies:T0,T1,.. choice k's text is Tk (k modulo their number), each
                   URL-decoded (a comma inside a text as %2C)
  errmsg:TEXT      the error message of status:S, URL-decoded
  errfill:N:TEXT   and then TEXT (URL-decoded) N times more
  drop:K           the first K requests are closed without any answer
  no-done          a stream ends after the finish reasons: no usage event,
                   no [DONE]
  hold:MS          a stream stays open MS milliseconds after its last event
                   before it ends
  ignore-max       max_tokens is not honoured
  fin-drop         a stream's connection drops right after the last
                   finish reason (the chunked body never ends)
  usage-lie        the usage counts 10^15 prompt and completion tokens
  llama-guard      a judge that answers as Llama Guard 3 does: "unsafe" and
                   the codes of the words it finds in the conversation of
                   the guard prompt (frobnicate S9, grault S10, plugh S1),
                   else "safe"; "I cannot tell." to any other prompt

python3's standard library only.
"""
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet "
         "kilo lima mike november oscar papa quebec romeo sierra tango "
         "uniform victor whiskey xray yankee zulu").split()
NATURAL_WORDS = 12

counts = {}
last = {}
counts_lock = threading.Lock()


def parse_flags(model):
    """'echo+fail500:2/tag' -> {'echo': '', 'fail500': '2'}"""
    flags = {}
    for part in model.split("/", 1)[0].split("+"):
        name, _, arg = part.partition(":")
        flags[name] = arg
    return flags


def seeded_tokens(seed, max_tokens):
    rnd = random.Random(seed)
    words = ["s%d" % seed] + [rnd.choice(WORDS) for _ in range(NATURAL_WORDS - 1)]
    toks = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if max_tokens < len(toks):
        return toks[:max_tokens], "length"
    return toks, "stop"


def pieces(text, size):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def apply_stop(tokens, finish, stops):
    """Cuts the text before the first stop string, as a server would."""
    text = "".join(tokens)
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    if cut < 0:
        return tokens, finish
    out, used = [], 0
    for t in tokens:
        if used + len(t) > cut:
            if cut > used:
                out.append(t[:cut - used])
            break
        out.append(t)
        used += len(t)
    return out, "stop"


# What the llama-guard flag's judge finds, by word: the Llama Guard 3 code.
JUDGE_WORDS = (("frobnicate", "S9"), ("grault", "S10"), ("plugh", "S1"))


def judge(req):
    """Answers as Llama Guard 3 does: "safe", or "unsafe" and a line of
    codes, for the conversation in the prompt of the last user message."""
    users = [m for m in req["messages"] if m["role"] == "user"]
    prompt = users[-1]["content"] if users else ""
    begin = prompt.find("<BEGIN CONVERSATION>")
    end = prompt.find("<END CONVERSATION>")
    if begin < 0 or end < begin:
        return "I cannot tell."
    conversation = prompt[begin:end].lower()
    codes = [c for w, c in JUDGE_WORDS if w in conversation]
    return "unsafe\n" + ",".join(codes) if codes else "safe"


def candidates(req, flags):
    """[(tokens, finish_reason)] for each choice of the request."""
    n = 1 if "ignore-n" in flags else int(req.get("n") or 1)
    seed = int(req.get("seed") or 0)
    max_tokens = int(req.get("max_tokens") or 16)
    if "ignore-max" in flags:
        max_tokens = 1000
    stops = req.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    out = []
    for k in range(n):
        if ("echo" in flags or "reply" in flags or "replies" in flags or
                "llama-guard" in flags):
            if "llama-guard" in flags:
                text = judge(req)
            elif "reply" in flags:
                text = urllib.parse.unquote(flags["reply"])
            elif "replies" in flags:
                texts = flags["replies"].split(",")
                text = urllib.parse.unquote(texts[k % len(texts)])
            else:
                users = [m for m in req["messages"] if m["role"] == "user"]
                text = users[-1]["content"] if users else ""
            toks = pieces(text, 3)
            finish = "stop"
            if len(toks) > max_tokens:
                toks, finish = toks[:max_tokens], "length"
        else:
            toks, finish = seeded_tokens(seed + k, max_tokens)
        if "ignore-stop" not in flags:
            toks, finish = apply_stop(toks, finish, stops)
        out.append((toks, finish))
    return out


def usage(req, cands, flags):
    prompt = sum(len(m.get("content", "").split()) for m in req["messages"])
    completion = sum(len(t) for t, _ in cands)
    if "usage-lie" in flags:
        prompt = completion = 10 ** 15
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the tests read stdout
        pass

    # ---- plumbing ----

    def send_json(self, status, obj, extra=()):
        body = json.dumps(obj).encode()
        self.send_raw(status, "application/json", body, extra)

    def send_raw(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj, flags):
        """One event, written in two chunks split mid-line."""
        eol = "\r\n" if "crlf" in flags else "\n"
        text = obj if isinstance(obj, str) else json.dumps(
            obj, indent=1 if "multiline" in flags else None)
        lines = "".join("data: %s%s" % (ln, eol) for ln in text.split("\n"))
        data = (": keep-alive" + eol + lines + eol).encode()
        half = len(data) // 2
        self.chunk(data[:half])
        self.chunk(data[half:])

    # ---- requests ----

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        model = urllib.parse.parse_qs(url.query).get("model", [""])[0]
        if url.path == "/count":
            with counts_lock:
                n = counts.get(model, 0)
            self.send_raw(200, "text/plain", str(n).encode())
        elif url.path == "/last" and model in last:
            with counts_lock:
                body = json.dumps(last[model]).encode()
            self.send_raw(200, "application/json", body)
        else:
            self.send_json(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        if not self.path.endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": "no such path"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(length))
        except ValueError as e:
            self.send_json(400, {"error": {"message": "bad JSON: %s" % e}})
            return
        model = str(req.get("model", ""))
        with counts_lock:
            counts[model] = counts.get(model, 0) + 1
            last[model] = req
            nth = counts[model]
        try:
            self.answer(req, parse_flags(model), nth)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (a timeout, or it had enough)

    def answer(self, req, flags, nth):
        if "slow" in flags:
            time.sleep(int(flags["slow"]) / 1000)
        if "drop" in flags and nth <= int(flags["drop"]):
            self.close_connection = True  # not a byte: an empty reply
            return
        if "fail500" in flags and nth <= int(flags["fail500"]):
            # Quotes the header, as careless servers do: pwb must not
            # repeat the key in its messages or logs.
            auth = self.headers.get("Authorization")
            self.send_json(500, {"error": {"message": "the mock is down" + (
                " (%s)" % auth if auth else "")}})
            return
        if "key" in flags:
            want = "Bearer " + os.environ.get("MOCK_OPENAI_KEY", "")
            got = self.headers.get("Authorization", "")
            if got != want:
                self.send_json(401, {"error": {
                    "message": "Incorrect API key provided: " + got}})
                return
        if "status" in flags:
            msg = "the mock refuses this"
            if "errmsg" in flags:
                msg = urllib.parse.unquote(flags["errmsg"])
            if "errfill" in flags:
                times, _, fill = flags["errfill"].partition(":")
                msg += urllib.parse.unquote(fill) * int(times)
            self.send_json(int(flags["status"]), {"error": {"message": msg}})
            return
        if "retry-after" in flags and nth == 1:
            self.send_json(429, {"error": {"message": "slow down"}},
                           [("Retry-After", flags["retry-after"])])
            return
        if "malformed-json" in flags:
            self.send_raw(200, "application/json",
                          b'{"choices": [{"index": 0, "message": {"cont')
            return
        if "huge" in flags:
            self.send_json(200, {"choices": [{"index": 0, "message": {
                "role": "assistant", "content": "a" * (17 << 20)},
                "finish_reason": "stop"}]})
            return
        if "no-choices" in flags:
            self.send_json(200, {"id": "x", "object": "chat.completion"})
            return
        cands = candidates(req, flags)
        if req.get("stream") and "ignore-stream" not in flags:
            self.stream(req, flags, cands)
        else:
            self.whole(req, flags, cands)

    def whole(self, req, flags, cands):
        self.send_json(200, {
            "id": "chatcmpl-mock", "object": "chat.completion",
            "model": req.get("model"),
            "choices": [{"index": k, "finish_reason": f, "message": {
                "role": "assistant", "content": "".join(t)}}
                for k, (t, f) in enumerate(cands)],
            "usage": usage(req, cands, flags)})

    def stream(self, req, flags, cands):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def delta(k, d, finish=None):
            return {"id": "chatcmpl-mock", "object": "chat.completion.chunk",
                    "choices": [{"index": k, "delta": d,
                                 "finish_reason": finish}]}

        for k in range(len(cands)):
            self.event(delta(k, {"role": "assistant", "content": ""}), flags)
        # Tokens of all candidates interleaved, as servers do for n > 1.
        sent = 0
        for i in range(max(len(t) for t, _ in cands)):
            for k, (toks, _) in enumerate(cands):
                if i < len(toks):
                    self.event(delta(k, {"content": toks[i]}), flags)
                    sent += 1
                    if sent == 2 and ("sse-cut" in flags or
                                      "sse-drop" in flags):
                        self.cut(flags)
                        return
                    if sent == 2 and "sse-garbage" in flags:
                        self.event("this is not {json", flags)
                    if sent == 2 and "sse-error" in flags:
                        self.event({"error": {
                            "message": "the model fell over"}}, flags)
        for k, (_, finish) in enumerate(cands):
            self.event(delta(k, {}, finish), flags)
        if "fin-drop" in flags:
            # The connection drops right after the last finish reason,
            # before the chunked body's end.
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if "no-done" not in flags:
            if (req.get("stream_options") or {}).get("include_usage"):
                self.event({"id": "chatcmpl-mock", "choices": [],
                            "usage": usage(req, cands, flags)}, flags)
            self.event("[DONE]", flags)
        if "hold" in flags:
            time.sleep(int(flags["hold"]) / 1000)
        self.chunk(b"")

    def cut(self, flags):
        part = b'data: {"choices": [{"index": 0, "delta": {"cont'
        if "sse-drop" in flags:
            # A chunk announced longer than what follows, then the end.
            self.wfile.write(b"%x\r\n%s" % (len(part) + 100, part))
            self.wfile.flush()
        else:
            self.chunk(part)
            self.chunk(b"")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    port = 0
    if len(sys.argv) == 3 and sys.argv[1] == "--port":
        port = int(sys.argv[2])
    elif len(sys.argv) != 1:
        print("usage: mock_openai.py [--port N]", file=sys.stderr)
        return 2
    srv = Server(("127.0.0.1", port), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
