"""The cluster-level times of make bench: what a cluster user waits for, with the ocf:rust
agent set (ocf:rust:VirtualDomain + ocf:rust:Dummy) against the shell one
(ocf:heartbeat:VirtualDomain + ocf:heartbeat:Dummy), alternated run by run on the same guest
images, medians of BENCH_CL_RUNS (default 3) runs per set.

- guest_node_times: under the one-node cluster of scripts/cluster.sh (started by bench.py),
  the guest node of the Guest Node walk-through (the image of scripts/build-remote-guest.sh,
  qemu user networking forwarded on a loopback address, readiness by monitor_scripts = a copy
  of scripts/guest-ready.sh): the VirtualDomain resource with remote-node=guest1 and FAKE1..5
  preferring guest1 pushed in one CIB update -> guest1 online and every FAKE Started on it;
  then kill -9 of pacemaker-remoted in the guest (its TEST-ONLY shell) -> the guest booted
  again, guest1 online and every FAKE Started on it again.
- pacemaker_migration_times: a two-node cluster (ocfa, ocfb of scripts/libvirt-hosts.sh, one
  corosync + pacemaker each, set up by tests/lib-nodes.sh), one guest per agent set
  (allow-migrate=true, migration_transport=tcp): `crm_resource --move -r R -N OTHER` -> R
  Started on OTHER and the DC idle, checked to have been a live migration (migrate_to and
  migrate_from in the logs, the guest never booted again).

Each function returns rows: dicts with name, samples {"rust": [s...], "shell": [s...]}, note.
"""

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_CL_RUNS", "3"))
HOSTS = os.path.join(REPO, "scripts/libvirt-hosts.sh")
SETS = {"rust": ("ocf:rust:VirtualDomain", "ocf:rust:Dummy"),
        "shell": ("ocf:heartbeat:VirtualDomain", "ocf:heartbeat:Dummy")}
URI = "qemu:///system"
CLEAN = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]


def _warn(msg):
    print(msg)


warn = _warn  # bench.py puts its own here (the warnings listed in RESULTS.md)


def sh(*args, check=True, timeout=180, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, timeout=timeout, **kw)


def order(i):
    """Run i's agent sets, rust first on even runs: each set goes first as often as the other."""
    return ["rust", "shell"] if i % 2 == 0 else ["shell", "rust"]


def wait_for(what, cond, timeout, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    raise RuntimeError(f"not within {timeout} s: {what}")


def accel(xml_path):
    with open(xml_path) as f:
        return "TCG" if "type='qemu'" in f.read() else "KVM"


def console_text(path, mark=0):
    try:
        with open(path, errors="replace") as f:
            f.seek(mark)
            return f.read()
    except FileNotFoundError:
        return ""


def console_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------- the guest node

GN_VM = "bench-guest1"
GN_NODE = "guest1"
GN_ADDR, GN_PORT, GN_CMD = "127.0.0.5", "3121", "2323"
FAKES = [f"FAKE{i}" for i in range(1, 6)]


def _mon():
    """crm_mon's XML: {node name: online}, {resource id: (role, node)}."""
    out = sh("crm_mon", "-1", "--output-as=xml", check=False, timeout=20).stdout
    try:
        root = ET.fromstring(out)
    except ET.ParseError:
        return {}, {}
    nodes = {n.get("name"): n.get("online") == "true" for n in root.iter("node") if n.get("type")}
    rscs = {}
    for r in root.iter("resource"):
        n = r.find("node")
        rscs[r.get("id")] = (r.get("role"), n.get("name") if n is not None else None)
    return nodes, rscs


def _all_on_guest():
    nodes, rscs = _mon()
    return nodes.get(GN_NODE, False) and all(rscs.get(f) == ("Started", GN_NODE) for f in FAKES)


def _guest_sh(cmd):
    return sh("timeout", "15", "ncat", GN_ADDR, GN_CMD, input=f"{cmd}\nexit\n", check=False, timeout=20).stdout


def _gn_gone(vm_xml):
    nodes, rscs = _mon()
    ours = [r for r in rscs if r in FAKES or r in (GN_VM, GN_NODE)]
    state = sh("virsh", "-q", "-c", URI, "domstate", GN_VM, check=False).stdout.strip()
    return not ours and state in ("", "shut off")


def _gn_teardown(vm_xml):
    """Everything of the guest-node rows out of the CIB (constraints first), the cluster's
    own stops awaited, the history cleaned up."""
    for f in FAKES:
        sh("cibadmin", "-D", "-X", f'<rsc_location id="location-{f}-{GN_NODE}-INFINITY"/>', check=False)
    for r in FAKES + [GN_VM]:
        sh("cibadmin", "-D", "-X", f'<primitive id="{r}"/>', check=False)
    try:
        wait_for("the guest-node resources stopped and gone", lambda: _gn_gone(vm_xml), 120, 0.5)
    finally:
        sh("virsh", "-q", "-c", URI, "destroy", GN_VM, check=False)
        sh("crm_resource", "--cleanup", check=False)
        sh("crm_node", "--force", "-R", GN_NODE, check=False)


def _gn_config(work, who, vm_xml, ready):
    """The resources and constraints of the guest-node rows as pcs writes them for agent set
    WHO (pcs -f on a copy of the live CIB, once): [(section, element)]."""
    vd, dummy = SETS[who]
    cib = os.path.join(work, f"gn-pcs-{who}.xml")
    sh("pcs", "cluster", "cib", cib)
    sh("pcs", "-f", cib, "resource", "create", GN_VM, vd, f"hypervisor={URI}", f"config={vm_xml}",
       f"monitor_scripts={ready}", "meta", f"remote-node={GN_NODE}", f"remote-addr={GN_ADDR}",
       f"remote-port={GN_PORT}", "--force")
    for f in FAKES:
        sh("pcs", "-f", cib, "resource", "create", f, dummy)
        sh("pcs", "-f", cib, "constraint", "location", f, "prefers", GN_NODE)
    root = ET.parse(cib).getroot()
    ours = set(FAKES + [GN_VM])
    out = [("resources", p) for p in root.find("configuration/resources") if p.get("id") in ours]
    out += [("constraints", c) for c in root.find("configuration/constraints") if c.get("rsc") in ours]
    if len(out) != 2 * len(FAKES) + 1:
        raise RuntimeError(f"pcs -f wrote {len(out)} elements for the guest-node rows, not {2 * len(FAKES) + 1}")
    return out


def _gn_cib(path, config):
    """The live CIB with CONFIG added and its epoch one up, in PATH: one replace pushes it all
    (as `pcs cluster cib-push` does), without pcs's own start-up inside the timed part."""
    root = ET.fromstring(sh("cibadmin", "-Q").stdout)
    for section, el in config:
        root.find(f"configuration/{section}").append(el)
    root.set("epoch", str(int(root.get("epoch", "0")) + 1))
    ET.ElementTree(root).write(path)


def guest_node_times(work, console_dir):
    """The guest-node create and kill -9 recovery rows (see the module's doc). The one-node
    cluster of scripts/cluster.sh must run."""
    gdir = os.path.join(REPO, "build/remote-guest")
    sh(os.path.join(REPO, "scripts/build-remote-guest.sh"), gdir, timeout=600)
    vm_xml = os.path.join(work, f"{GN_VM}.xml")
    cons = os.path.join(console_dir, f"{GN_VM}.console")
    sh(os.path.join(REPO, "scripts/make-remote-domain.sh"), GN_VM, vm_xml, "--addr", GN_ADDR, "--port", GN_PORT,
       "--cmd-port", GN_CMD, "--guest-dir", gdir, "--console", cons)
    ready = os.path.join(work, f"guest-ready@{GN_ADDR}:{GN_PORT}")
    shutil.copy(os.path.join(REPO, "scripts/guest-ready.sh"), ready)
    os.chmod(ready, 0o755)
    note = f"one-node cluster, guest node under {accel(vm_xml)}"
    create = {"name": "guest node create -> guest online, FAKE1..5 Started in it", "note": note, "order": 1,
              "chart": "guest node create",
              "samples": {"rust": [], "shell": []}}
    recover = {"name": "kill -9 of pacemaker-remoted -> guest rebooted, online, FAKE1..5 Started again",
               "note": note, "order": 2, "chart": "kill -9 of remoted",
               "samples": {"rust": [], "shell": []}}
    _gn_teardown(vm_xml)
    config = {who: _gn_config(work, who, vm_xml, ready) for who in SETS}
    for i in range(RUNS):
        for who in order(i):
            cib = os.path.join(work, f"gn-{who}.xml")
            _gn_cib(cib, config[who])
            try:
                os.remove(cons)
            except FileNotFoundError:
                pass
            try:
                t0 = time.time()
                sh("cibadmin", "--replace", "--xml-file", cib)
                wait_for(f"{who}: guest1 online, FAKE1..5 Started on it", _all_on_guest, 180)
                create["samples"][who].append(time.time() - t0)
                sh("crm_resource", "--wait", "--timeout=60", check=False, timeout=90)
                mark = console_size(cons)
                pid = _guest_sh("pidof pacemaker-remoted").strip()
                if not re.fullmatch(r"\d+", pid):
                    raise RuntimeError(f"{who}: no pacemaker-remoted in the guest ('{pid}')")
                t0 = time.time()
                _guest_sh(f"kill -9 {pid}")
                wait_for(f"{who}: the guest recovered (booted again, online, FAKE1..5 Started in it)",
                         lambda: "GUEST-BOOT" in console_text(cons, mark) and _all_on_guest(), 240)
                recover["samples"][who].append(time.time() - t0)
                boots = console_text(cons).count("GUEST-BOOT")
                if boots != 2:
                    warn(f"warning: guest node run {i + 1} ({who}): the guest booted {boots} times, not twice")
            except RuntimeError as e:
                warn(f"warning: guest node run {i + 1} ({who}): {e}")
            finally:
                _gn_teardown(vm_xml)
    return [create, recover]


# ---------------------------------------------------------------- the two-node cluster

MIG_NODES = ("ocfa", "ocfb")
MIG_VMS = {"rust": "bench-cl-rust", "shell": "bench-cl-shell"}


def _on(host, *cmd, check=False, timeout=60):
    return sh(HOSTS, "exec", host, *CLEAN, *cmd, check=check, timeout=timeout)


def _nodes(tmp, script):
    """Runs SCRIPT with tests/lib-nodes.sh (and what it needs) sourced, its scratch dir TMP."""
    src = (f"T_RESULTS=/dev/null; source '{REPO}/tests/lib.sh'; source '{REPO}/tests/lib-guest.sh'; "
           f"source '{REPO}/tests/lib-nodes.sh'; trap - EXIT ERR; rm -rf \"$T_TMP\"; T_TMP='{tmp}'; set -e; ")
    return sh("bash", "-c", src + script, check=True, timeout=180)


def _located(rsc):
    out = _on("ocfa", "crm_resource", "--locate", "-r", rsc).stdout
    m = re.search(r"is running on: (\S+)", out)
    return m.group(1) if m else None


def _idle():
    dc = _on("ocfa", "crmadmin", "-q", "-D").stdout.split()
    dc = dc[-1] if dc else ""
    if not dc:
        dc = (_on("ocfa", "crmadmin", "-q", "-D").stderr.split() or [""])[-1]
    if not dc:
        return False
    st = _on("ocfa", "crmadmin", "-q", "-S", dc)
    return "S_IDLE" in st.stdout + st.stderr


def _online_both():
    out = _on("ocfa", "crm_mon", "-1").stdout
    return "Online: [ ocfa ocfb ]" in out and "partition with quorum" in out


def pacemaker_migration_times(work, make_domain):
    """The Pacemaker-driven live migration row (see the module's doc). The hosts of
    scripts/libvirt-hosts.sh must be up; the cluster is started here and stopped at the end."""
    tmp = tempfile.mkdtemp(prefix="cl-nodes.", dir=work)
    row = {"name": "crm_resource --move -> Started on the other node (live migration)",
           "note": "", "order": 3, "chart": "Pacemaker migration", "samples": {"rust": [], "shell": []}}
    _nodes(tmp, "nodes_init ocfbench ocfa ocfb; seed_option dc-deadtime 100ms; "
                "seed_option stonith-enabled false; seed_option no-quorum-policy ignore; "
                "seed_rsc_defaults resource-stickiness 100; node_files ocfa; node_files ocfb; "
                "node_start ocfa; node_start ocfb")
    try:
        wait_for("ocfa and ocfb online with quorum", _online_both, 60, 0.5)
        wait_for("the DC idle", _idle, 30, 0.5)
        xml, cons = {}, {}
        for who, vm in MIG_VMS.items():
            cons[who] = os.path.join(work, f"{vm}.console")
            xml[who] = make_domain(vm, "--console", cons[who])
            for h in MIG_NODES:
                _on(h, "virsh", "-c", URI, "destroy", vm)
            _on("ocfa", "pcs", "resource", "create", vm, SETS[who][0], f"config={xml[who]}", f"hypervisor={URI}",
                "migration_transport=tcp", "meta", "allow-migrate=true", "op", "monitor", "interval=5s",
                "timeout=30s", check=True)
        row["note"] = f"two-node cluster (ocfa, ocfb), guests under {accel(xml['rust'])}, migration_transport=tcp"
        for who, vm in MIG_VMS.items():
            wait_for(f"{vm} started", lambda vm=vm: _located(vm) is not None, 90, 0.5)
        wait_for("the DC idle", _idle, 60, 0.5)
        for i in range(RUNS):
            for who in order(i):
                vm = MIG_VMS[who]
                src = _located(vm)
                dst = "ocfb" if src == "ocfa" else "ocfa"
                logs = {h: os.path.join(tmp, h, "log/pacemaker.log") for h in MIG_NODES}
                marks = {h: os.path.getsize(logs[h]) for h in MIG_NODES}
                t0 = time.time()
                _on("ocfa", "crm_resource", "--move", "-r", vm, "-N", dst, check=True)
                try:
                    wait_for(f"{vm} on {dst}, the DC idle", lambda: _located(vm) == dst and _idle(), 90, 0.1)
                    row["samples"][who].append(time.time() - t0)
                except RuntimeError as e:
                    warn(f"warning: Pacemaker migration run {i + 1} ({who}): {e}")
                _on("ocfa", "crm_resource", "--clear", "-r", vm, check=True)
                log = "".join(console_text(logs[h], marks[h]) for h in MIG_NODES)
                if f"Result of migrate_from operation for {vm} on {dst}: ok" not in log or \
                        f"Result of start operation for {vm}" in log:
                    warn(f"warning: Pacemaker moved {vm} ({who}) {src} -> {dst} without a live migration")
                wait_for("the DC idle after --clear", _idle, 60, 0.2)
        for who in MIG_VMS:
            boots = console_text(cons[who]).count("GUEST-BOOT")
            if boots != 1:
                warn(f"warning: the {who} guest of the Pacemaker migrations booted {boots} times")
    finally:
        try:
            _nodes(tmp, "NODES=(ocfa ocfb); nodes_stop_all")
        except (subprocess.SubprocessError, OSError) as e:
            warn(f"warning: stopping the two-node cluster: {e}")
    return [row]


# what a passing tests/scale/cluster.sh leaves (its SCALE_TIMINGS default)
SCALE_TIMINGS = os.environ.get("SCALE_TIMINGS", os.path.join(REPO, "build", "scale-timings.tsv"))


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def section(rows, fmt):
    """The "Cluster-level times" section of RESULTS.md."""
    out = ["## Cluster-level times", "",
           "What a cluster user waits for, timed from the command to the state crm_mon shows: "
           "the ocf:rust set (ocf:rust:VirtualDomain, ocf:rust:Dummy) against the shell set "
           "(ocf:heartbeat:VirtualDomain, ocf:heartbeat:Dummy), alternated run by run on the same guest "
           "images, medians. The guest node is the one of the Guest Node walk-through "
           "(scripts/build-remote-guest.sh: pacemaker-remoted and both Dummy agents; readiness by "
           "monitor_scripts=scripts/guest-ready.sh); FAKE1..5 prefer guest1, so both Dummy agents run inside "
           "the guest. Most of these times are the guest's boot and Pacemaker's own work, not the agents'.", "",
           "| row | rust median | shell median | runs | ratio | note |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["order"]):
        s, u = r["samples"]["rust"], r["samples"]["shell"]
        ratio = f"{med(u) / med(s):.2f}x" if s and u else "-"
        out.append(f"| {r['name']} | {fmt(med(s))} | {fmt(med(u))} | {len(s)} rust, {len(u)} shell | {ratio} | "
                   f"{r['note']} |")
    out += ["", "Ratio = shell median / rust median (above 1: the ocf:rust set is faster).", "",
            "Not measured by `make bench`: the drain (`pcs node standby`) and node-loss times of the "
            "three-node scale layer. One run of `tests/scale/cluster.sh` (both agent sets, a dozen guests) "
            "takes 4 to 5 minutes here; three runs per set would not fit the 10 minutes of `make bench` on "
            "2 cores. `make test-scale` measures them (one run per agent set: ocf:rust first, then "
            "ocf:heartbeat on the same guests) and a run whose every case passed leaves them in "
            f"`{os.path.relpath(SCALE_TIMINGS, REPO)}`; `make bench` copies the last such run below, "
            "with its date, as what it is.", ""]
    out += scale_section()
    return out


def scale_section():
    """The drain and node-loss times of the last passing `make test-scale` run, labelled as such."""
    try:
        with open(SCALE_TIMINGS) as f:
            lines = [l.rstrip("\n") for l in f]
    except OSError:
        return [f"No passing `make test-scale` run on this machine yet (no {SCALE_TIMINGS}).", ""]
    head = lines[0].lstrip("# ") if lines and lines[0].startswith("#") else "make test-scale"
    rows = {}
    for l in lines[1:]:
        f = l.split("\t")
        if len(f) == 3 and f[0] != "step":
            rows[f[0]] = (f[1], f[2])
    names = [("create", "the guests created in one CIB push -> all Started (s)"),
             ("drain", "drain: pcs node standby of the busiest node -> all settled elsewhere (s)"),
             ("node-loss", "node loss: every process of a node killed -> its VMs Started elsewhere (s)"),
             ("concurrent", "migrate_to at once on the drained node")]
    out = [f"From the last passing run of {head} (one run per agent set, not re-measured by this "
           "`make bench`):", "", "| step | ocf:rust | ocf:heartbeat |", "|---|---|---|"]
    for key, label in names:
        if key in rows:
            out.append(f"| {label} | {rows[key][0]} | {rows[key][1]} |")
    return out + [""]
