#!/usr/bin/env python3
"""Read every range and default mtd.policy(5) and mtd-agent(8) state and check
them against the parser (tests/integration/manpage_numbers.sh runs this).

For each key of mtd.policy(5) whose entry states a range ("1 to 100",
"100ms to 1h", "1M to 1T", "1% to 10000%", "/8 to /30", "at least 10s",
"at most 1w"), `mtdctl policy check` must accept the bound and refuse one
past it; for each "Default X", `mtdctl --json policy check --plan` must show
X for a policy that leaves the key out. For mtd-agent(8), each option's
"Default X" must be the [X] of `mtd-agent --help`. What the script cannot
read is printed; it fails when fewer than MIN_SHARE of the keys that state a
number were checked in either page, or a page yields almost none.

usage: manpage_numbers.py REPO BUILD_DIR WORK_DIR
"""
import json
import os
import re
import shlex
import subprocess
import sys

REPO, BUILD, WORK = sys.argv[1:4]
MTDCTL = os.path.join(BUILD, "mtdctl")
AGENT = os.path.join(BUILD, "mtd-agent")
MIN_SHARE = 0.8
# Fewer numbers than this found in a page means its roff was not read (the
# pages state 81 and 14 in December 2026)
MIN_POLICY_NUMBERS = 50
MIN_AGENT_NUMBERS = 10

failures = []
checks = 0
unread = []


def fail(msg):
    failures.append(msg)
    print("  FAIL: " + msg)


def ok(msg):
    global checks
    checks += 1
    print("  ok: " + msg)


# --- roff to text ----------------------------------------------------------------------
def unescape(s):
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\&", "").replace("\\(bu", "").replace("\\(em", "-")
    s = s.replace("\\e", "\\")
    return s


def roff_line(line):
    """One source line as text: macro arguments joined (alternating fonts
    without spaces, .B/.I with), escapes removed."""
    if not line.startswith("."):
        return unescape(line)
    m = re.match(r"\.([A-Z]{1,2})\s*(.*)", line)
    if not m:
        return ""
    macro, rest = m.groups()
    try:
        args = shlex.split(rest, posix=True)
    except ValueError:
        args = rest.split()
    if macro in ("B", "I", "SM"):
        return unescape(" ".join(args))
    if macro in ("BR", "RB", "BI", "IB", "IR", "RI"):
        return unescape("".join(args))
    return ""


def entries(path):
    """(section, tag text, body text) of every .TP entry."""
    out = []
    section = ""
    tag = None
    body = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SH") or line.startswith(".SS") or line.startswith(".TP"):
            if tag is not None:
                out.append((section, tag, " ".join(body)))
            tag = None
            body = []
            if line.startswith(".SH"):
                section = unescape(line[3:].strip().strip('"'))
            elif line.startswith(".TP") and i + 1 < len(lines):
                i += 1
                tag = lines[i]
        elif tag is not None and not line.startswith('.\\"'):
            if line.startswith(".PP") or line.startswith(".SH") or line.startswith(".nf"):
                out.append((section, tag, " ".join(body)))
                tag = None
                body = []
            else:
                body.append(roff_line(line))
        i += 1
    if tag is not None:
        out.append((section, tag, " ".join(body)))
    return out


# --- values ----------------------------------------------------------------------------
TIME_UNITS = {"us": 1, "ms": 1000, "s": 10**6, "min": 60 * 10**6, "h": 3600 * 10**6,
              "d": 86400 * 10**6, "w": 7 * 86400 * 10**6}
SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_value(text):
    """('time', usec) | ('size', bytes) | ('percent', n) | ('number', n) |
    ('prefix', n) | None"""
    m = re.fullmatch(r"(\d+)(us|ms|s|min|h|d|w)", text)
    if m:
        return ("time", int(m.group(1)) * TIME_UNITS[m.group(2)])
    m = re.fullmatch(r"(\d+)([KMGT])", text)
    if m:
        return ("size", int(m.group(1)) * SIZE_UNITS[m.group(2)])
    m = re.fullmatch(r"(\d+)%", text)
    if m:
        return ("percent", int(m.group(1)))
    m = re.fullmatch(r"/(\d+)", text)
    if m:
        return ("prefix", int(m.group(1)))
    m = re.fullmatch(r"\d+", text)
    if m:
        return ("number", int(text))
    return None


def render(kind, n):
    if kind == "time":
        return "%dus" % n
    if kind == "percent":
        return "%d%%" % n
    return "%d" % n


def step(kind, lo, hi):
    if kind == "time":
        for s in (10**6, 1000):
            if (lo is None or lo % s == 0) and (hi is None or hi % s == 0):
                return s
    return 1


NUM = r"(/?\d+(?:us|ms|s|min|h|d|w|[KMGT]|%)?)"


def ranges_of(body):
    """[(lo text or None, hi text or None, what it counts or "")] in order of
    appearance; "what" is the word after the range ("words", "ports", "hex
    digits") when the range counts something other than the value."""
    found = []
    for m in re.finditer(NUM + r" to " + NUM + r"(?![\w%])|[Aa]t (least|most) " + NUM +
                         r"(?![\w%])", body):
        w = re.match(r" ?\(?((?:hex )?[A-Za-z]+)", body[m.end():])
        what = w.group(1) if w and w.group(1) in COUNTED_WORDS else ""
        if m.group(1):
            found.append((m.start(), m.group(1), m.group(2), what))
        elif m.group(3) == "least":
            found.append((m.start(), m.group(4), None, what))
        else:
            found.append((m.start(), None, m.group(4), what))
    return [(lo, hi, what) for _, lo, hi, what in found]


# Ranges that count something in the value (or the file it names) rather
# than bound the value: the words that say so
COUNTED_WORDS = ("words", "ports", "hex digits", "bytes", "KiB", "characters")


def defaults_of(body):
    """Default values: "Default X." / "Default: X." / "(... default X)"."""
    found = [(m.start(), m.group(1)) for m in re.finditer(
        r"[Dd]efault:? ((?:\d+(?:us|ms|s|min|h|d|w|[KMGT]|%)?(?:/\d+\w+)?)|(?:none|no|yes)\b|"
        r"infinity|@[a-z-]+|[a-z]+(?=\.|;|\)|,))", body)]
    # "killed by default": the verb's stem is the value
    found += [(m.start(), m.group(1)) for m in re.finditer(r"\b([a-z]+?)(?:ed)? by default",
                                                           body)]
    # "0 (the default) means", "Default: tcp for a managed service" (the
    # test's policy is a managed one)
    found += [(m.start(), m.group(1)) for m in re.finditer(
        r"(\S+) \(the default\)", body)]
    found += [(m.start(), m.group(1)) for m in re.finditer(
        r"Default:? (\S+) for a managed service", body)]
    return [d for _, d in sorted((p, d) for p, d in found if d)]


# --- the parser's side -----------------------------------------------------------------
KEY = os.path.join(WORK, "k.key")
with open(KEY, "w") as f:
    f.write(os.urandom(32).hex() + "\n")
os.chmod(KEY, 0o600)

# ClientKeys=: a directory of one client's raw key (the knock keys need it).
CLIENTS = os.path.join(WORK, "clients")
os.makedirs(CLIENTS, mode=0o700, exist_ok=True)
with open(os.path.join(CLIENTS, "c.key"), "wb") as f:
    f.write(os.urandom(32))
os.chmod(os.path.join(CLIENTS, "c.key"), 0o600)
KNOCK = {"Rotation": ["-KeyFile", "ClientKeys=" + CLIENTS, "ClientAuth=knock"]}

BASE = {
    "Service": ["Name=m", "Snapshot=/", "SnapshotKey=/k.pub", "Exec=/bin/true", "ListenPort=80/tcp"],
    "Rotation": ["PublicPorts=20000-29999", "KeyFile=" + KEY, "AddressPool=10.9.0.0/16"],
    "Envelope": [],
}

# Keys whose bound another key limits: what else the test policy sets so that
# the stated bound is the one that decides.
COMPANIONS = {
    "HealthInterval": {"Service": ["HealthTimeout=10ms"]},
    "HealthTimeout": {"Service": ["HealthInterval=1h"]},
    "MaxLifetimeJitter": {"Service": ["MaxLifetime=30d"]},
    "Grace": {"Rotation": ["Interval=1w"]},
    "Interval": {"Rotation": ["Grace=0"]},
    "DecoyBlock": {"Rotation": ["DecoyBlockMax=30d", "Decoys=1"]},
    "DecoyBlockMax": {"Rotation": ["DecoyBlock=1s", "Decoys=1"]},
    "DecoyRepeatWindow": {"Rotation": ["Decoys=1"]},
    "DecoyBlockFactor": {"Rotation": ["Decoys=1"]},
    "StandbyInstances": {"Service": ["ReplaceBurst=1000"]},
    "ReplaceBurst": {},
    "KnockWindow": KNOCK,
    "KnockRate": KNOCK,
}


def key_file_of(digits):
    """A key file of DIGITS hex digits (KeyFile='s "64 to 256 hex digits")."""
    path = os.path.join(WORK, "k%d.key" % digits)
    with open(path, "w") as f:
        f.write(("0123456789abcdef" * 32)[:digits] + "\n")
    os.chmod(path, 0o600)
    return path


def key_file_sized(kib):
    """A valid key file of KIB KiB: 64 hex digits, then comment lines."""
    path = os.path.join(WORK, "s%d.key" % kib)
    body = "0123456789abcdef" * 4 + "\n"
    pad = kib * 1024 - len(body)
    lines = []
    while pad > 0:
        n = min(pad, 80)
        lines.append("#" + "x" * (n - 2) + "\n" if n >= 2 else "\n")
        pad -= n
    with open(path, "w") as f:
        f.write(body + "".join(lines))
    os.chmod(path, 0o600)
    assert os.path.getsize(path) == kib * 1024
    return path


# How a counted range is written into the key's value, from the count
COUNTED = {
    ("Exec", "words"): lambda n: "/bin/true" + " x" * (n - 1),
    ("PublicPorts", "ports"): lambda n: "20000-%d" % (20000 + n - 1),
    ("KeyFile", "hex digits"): key_file_of,
    ("KeyFile", "bytes"): lambda n: key_file_of(2 * n),
    ("KeyFile", "KiB"): key_file_sized,
}


def policy_text(section, key, value):
    parts = {s: list(v) for s, v in BASE.items()}
    for s, lines in COMPANIONS.get(key, {}).items():
        # "-Key" removes Key= from the base policy
        parts[s] = [l for l in parts[s] if l.split("=")[0] not in
                    [x.split("=")[0].lstrip("-") for x in lines]] + \
            [l for l in lines if not l.startswith("-")]
    if key is not None:
        parts[section] = [l for l in parts[section] if not l.startswith(key + "=")]
        parts[section].append("%s=%s" % (key, value))
    return "".join("[%s]\n%s\n\n" % (s, "\n".join(v)) for s, v in parts.items())


def run_check(section, key, value, global_file=False):
    d = os.path.join(WORK, "p")
    os.makedirs(d, exist_ok=True)
    pol = os.path.join(d, "m.policy")
    args = [MTDCTL, "policy", "check"]
    if global_file:
        conf = os.path.join(WORK, "mtd.conf")
        with open(conf, "w") as f:
            f.write("[%s]\n%s=%s\n" % (section, key, value))
        args += ["--config", conf]
        with open(pol, "w") as f:
            f.write(policy_text(None, None, None))
    else:
        with open(pol, "w") as f:
            f.write(policy_text(section, key, value))
    r = subprocess.run(args + [pol], capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def plan_json():
    d = os.path.join(WORK, "p")
    os.makedirs(d, exist_ok=True)
    pol = os.path.join(d, "m.policy")
    with open(pol, "w") as f:
        f.write(policy_text(None, None, None))
    r = subprocess.run([MTDCTL, "--json", "policy", "check", "--plan", pol],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("the base policy does not load: " + r.stdout + r.stderr)
    j = json.loads(r.stdout)
    return j["services"][0]["policy"], j["globals"]


def snake(key):
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


# --- mtd.policy(5) ---------------------------------------------------------------------
# The global file's keys under [Hooks]; the rest of it is [Decoys].
HOOK_KEYS = ("OnEvent", "HookTimeout", "HookRate", "HookUser")
# Keys whose numbers count other things (lines, record types, hooks running
# at once), not a bound of the value: listed as unread.
PROSE_KEYS = {"OnEvent": "its numbers count lines, record types and hooks running at once",
              "ClientKeys": "its numbers bound the names and sizes of the directory's files",
              "HostId": "its numbers bound its length"}
# The global file's keys under [Agent].
AGENT_KEYS = ("HostId",)


def file_section(section, key):
    if section == "Decoys" and key in AGENT_KEYS:
        return "Agent"
    return "Hooks" if section == "Decoys" and key in HOOK_KEYS else section


SECTIONS = {"[Service] SECTION": "Service", "[Rotation] SECTION": "Rotation",
            "[Envelope] SECTION": "Envelope", "GLOBAL FILE": "Decoys"}
policy_json, globals_json = plan_json()

with_numbers = 0
checked = 0
print("mtd.policy(5): ranges")
for sect, tag, body in entries(os.path.join(REPO, "docs/mtd.policy.5")):
    section = SECTIONS.get(sect)
    if section is None:
        continue
    keys = re.findall(r"\b([A-Z][A-Za-z]+)=", roff_line(tag))
    if not keys:
        continue
    rs = ranges_of(body)
    if not rs:
        continue
    # a range per key in order; one range for several keys holds for each
    if len(keys) > 1 and len(rs) == len(keys):
        pairs = list(zip(keys, [[r] for r in rs]))
    elif len(keys) > 1 and len(rs) == 1:
        pairs = [(k, rs) for k in keys]
    else:
        pairs = [(keys[0], rs)] + [(k, []) for k in keys[1:]]
    for key, krs in pairs:
        if not krs:
            continue
        if key in PROSE_KEYS:
            unread.append("%s= (%s)" % (key, PROSE_KEYS[key]))
            print("  unread: %s= (%s)" % (key, PROSE_KEYS[key]))
            continue
        with_numbers += 1
        done = True
        for idx, (lo, hi, what) in enumerate(krs):
            plo = parse_value(lo) if lo else None
            phi = parse_value(hi) if hi else None
            kind = (plo or phi or (None,))[0]
            counted = COUNTED.get((key, what))
            if kind is None or (plo and phi and plo[0] != phi[0]) or (what and not counted):
                unread.append("%s= range %s to %s%s" % (key, lo or "-", hi or "-",
                                                         " " + what if what else ""))
                done = False
                continue
            # how a bound is written into the key's value
            if counted:
                tmpl = counted
            elif key in ("UDPBlockLimit", "HookRate", "KnockRate"):
                tmpl = "{}/1min" if idx == 0 else "32/{}"
            elif kind == "prefix":
                tmpl = "10.0.0.0{}" if idx == 0 else "fd00::{}"
            else:
                tmpl = "{}"
            st = 2 if what == "hex digits" else 1 if what else step(kind, plo and plo[1], phi and phi[1])
            probes = []
            if plo:
                probes.append((render(kind, plo[1]) if kind != "prefix" else lo, True))
                if plo[1] - st >= 0:
                    probes.append((render(kind, plo[1] - st) if kind != "prefix"
                                   else "/%d" % (plo[1] - 1), False))
            if phi:
                probes.append((render(kind, phi[1]) if kind != "prefix" else hi, True))
                probes.append((render(kind, phi[1] + st) if kind != "prefix"
                               else "/%d" % (phi[1] + 1), False))
            bad = len(failures)
            for v, accept in probes:
                value = tmpl(int(v)) if callable(tmpl) else tmpl.format(v)
                rc, out = run_check(file_section(section, key), key, value,
                                    global_file=(section == "Decoys"))
                if accept and rc != 0:
                    fail("%s=%s is within the stated range %s to %s but refused: %s" %
                         (key, value, lo, hi, out))
                elif not accept and rc == 0:
                    fail("%s=%s is past the stated range %s to %s but accepted" %
                         (key, value, lo, hi))
                elif not accept and key not in out:
                    fail("%s=%s refused without naming the key: %s" % (key, value, out))
            if len(failures) == bad:
                ok("%s=: %s to %s%s (%s)" % (key, lo or "-", hi or "-",
                                             " " + what if what else "",
                                             ", ".join("%s %s" % (v, "ok" if a else "refused")
                                                       for v, a in probes)))
        if done:
            checked += 1

print("mtd.policy(5): defaults")
VALUE_KEYS = {"quarantine_max": "quarantine_max_bytes", "memory_max": "memory_max_bytes",
              "writable_size": "writable_size_bytes"}
for sect, tag, body in entries(os.path.join(REPO, "docs/mtd.policy.5")):
    section = SECTIONS.get(sect)
    if section is None:
        continue
    keys = re.findall(r"\b([A-Z][A-Za-z]+)=", roff_line(tag))
    if not keys:
        continue
    ds = defaults_of(body)
    if not ds:
        if re.search(r"[Dd]efault", body):
            with_numbers += 1
            unread.append("%s= default: %s" % ("=, ".join(keys), re.search(
                r"[Dd]efault.{0,60}", body).group(0)))
        continue
    if len(keys) > 1 and len(ds) == len(keys):
        pairs = list(zip(keys, ds))
    elif len(keys) > 1 and len(ds) == 1:
        pairs = [(k, ds[0]) for k in keys]
    else:
        pairs = [(keys[0], ds[0])]
    for key, d in pairs:
        with_numbers += 1
        name = snake(key)
        if section == "Decoys":
            obj = globals_json
        else:
            obj = policy_json[section.lower()]
        if key == "UDPBlockLimit":
            n, span = d.split("/")
            got = "%s/%s" % (obj.get("udp_block_limit"), obj.get("udp_block_interval"))
            if parse_value(span) != ("time", obj.get("udp_block_interval_usec")) or \
                    str(obj.get("udp_block_limit")) != n:
                fail("UDPBlockLimit= default %s in the man page, %s parsed" % (d, got))
            else:
                ok("UDPBlockLimit= default %s" % d)
            checked += 1
            continue
        if name not in obj:
            unread.append("%s= default %r: no %r in the policy's JSON" % (key, d, name))
            continue
        got = obj[name]
        pv = parse_value(d)
        if d == "none":
            good = got in ([], None, "none")
        elif d in ("no", "yes"):
            good = got is (d == "yes")
        elif pv and pv[0] == "time":
            good = obj.get(name + "_usec") == pv[1]
        elif pv and pv[0] == "size":
            good = obj.get(VALUE_KEYS.get(name, name)) == pv[1]
        elif pv and pv[0] == "number":
            good = got == pv[1] or obj.get(name + "_usec") == pv[1] * 10**6 or \
                obj.get(VALUE_KEYS.get(name, "")) == pv[1]
        elif isinstance(got, list):
            good = " ".join(got) == d
        else:
            good = str(got) == d
        if good:
            ok("%s= default %s" % (key, d))
        else:
            fail("%s= default %s in the man page, %s parsed" % (key, d, json.dumps(got)))
        checked += 1

# --- mtd-agent(8) against --help -------------------------------------------------------
policy_page = (checked, with_numbers)
checked = with_numbers = 0
print("mtd-agent(8): option defaults against mtd-agent --help")
helptext = subprocess.run([AGENT, "--help"], capture_output=True, text=True).stdout
help_defaults = {}
cur = None
for line in helptext.split("\n"):
    m = re.match(r"\s+(--[a-z-]+)", line)
    if m:
        cur = m.group(1)
    for d in re.findall(r"\[([^\]]+)\]", line):
        if cur:
            help_defaults[cur] = d.split(",")[0].strip()
for sect, tag, body in entries(os.path.join(REPO, "docs/mtd-agent.8")):
    m = re.match(r"(--[a-z-]+)", roff_line(tag))
    if not m:
        continue
    opt = m.group(1)
    dm = re.search(r"Default (\S+?)[.,]?(?:\s|$)", body)
    if not dm:
        continue
    with_numbers += 1
    d = dm.group(1).rstrip(".,")
    if opt not in help_defaults:
        fail("mtd-agent(8) gives %s a default (%s), --help none" % (opt, d))
    elif help_defaults[opt] != d:
        fail("%s: default %s in mtd-agent(8), [%s] in --help" % (opt, d, help_defaults[opt]))
    else:
        ok("%s default %s" % (opt, d))
    checked += 1
for opt in help_defaults:
    if not any(re.match(re.escape(opt) + r"\b", roff_line(t)) for _, t, _ in
               entries(os.path.join(REPO, "docs/mtd-agent.8"))):
        fail("--help gives %s a default, mtd-agent(8) does not document it" % opt)

# --- mtdctl(8): --skew's bound, --socket's default ---------------------------------------
print("mtdctl(8): --skew and --socket")
mtdctl_text = " ".join(roff_line(l) for l in
                       open(os.path.join(REPO, "docs/mtdctl.8"), encoding="utf-8").read().split("\n"))
m = re.search(r"--skew DURATION \(.*?at most (\d+\w+)\)", mtdctl_text)
with_numbers += 1
if not m or not parse_value(m.group(1)) or parse_value(m.group(1))[0] != "time":
    unread.append("mtdctl --skew: no 'at most' bound found")
else:
    hi = parse_value(m.group(1))[1]
    d = os.path.join(WORK, "skew")
    os.makedirs(d, exist_ok=True)
    pol = os.path.join(d, "m.policy")
    # a long Interval=, so that the skew's bound, not the boundaries it
    # crosses, decides
    with open(pol, "w") as f:
        f.write(policy_text("Rotation", "Interval", "1w"))
    res = []
    for v, accept in ((render("time", hi), True), (render("time", hi + 10**6), False)):
        r = subprocess.run([MTDCTL, "port", "m", "--policy", pol, "--skew", v],
                           capture_output=True, text=True)
        res.append("%s %s" % (v, "ok" if r.returncode == 0 else "refused"))
        if (r.returncode == 0) != accept:
            fail("mtdctl port --skew %s: %s, mtdctl(8) says at most %s: %s" %
                 (v, "refused" if accept else "accepted", m.group(1), r.stderr.strip()))
    ok("mtdctl port --skew at most %s (%s)" % (m.group(1), ", ".join(res)))
    checked += 1
m = re.search(r"--socket PATH The control socket\. Default (\S+?)\.?(?:\s|$)", mtdctl_text)
with_numbers += 1
if not m:
    unread.append("mtdctl --socket: no default found")
else:
    r = subprocess.run([MTDCTL, "status"], capture_output=True, text=True)
    if "cannot reach the agent at %s:" % m.group(1) in r.stderr:
        ok("mtdctl --socket default %s" % m.group(1))
        checked += 1
    elif r.returncode == 0 or "cannot reach the agent at" not in r.stderr:
        unread.append("mtdctl --socket: an agent answers here, the default is not seen")
    else:
        fail("mtdctl --socket: default %s in mtdctl(8), mtdctl says: %s" %
             (m.group(1), r.stderr.strip()))

for u in unread:
    print("  not read: " + u)
short = False
for page, (c, n), floor in (("mtd.policy(5)", policy_page, MIN_POLICY_NUMBERS),
                            ("mtd-agent(8), mtdctl(8)", (checked, with_numbers), MIN_AGENT_NUMBERS)):
    print("%s: %d of %d stated numbers checked" % (page, c, n))
    if n < floor or c < MIN_SHARE * n:
        print("FAIL: %s: fewer than %d%% of its stated numbers checked, or fewer than %d "
              "found (is the roff read?)" % (page, MIN_SHARE * 100, floor))
        short = True
print("%d checks, %d not read, %d failures" % (checks, len(unread), len(failures)))
if short:
    sys.exit(1)
sys.exit(1 if failures else 0)
