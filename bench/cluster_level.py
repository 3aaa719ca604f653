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
- scale_times: a three-node cluster (ocfa, ocfb, ocfc), BENCH_CL_VMS guests (default 4,
  BENCH_CL_VM_MEMORY MiB each, default 96) per agent set: created in one CIB update ->
  all Started; crm_standby of the busiest node -> every guest Started elsewhere by live
  migration; a power cut of the busiest node (libvirt-hosts.sh kill) -> every guest Started
  on the survivors, each domain running once. Between runs the guests are deleted and the
  node booted back into the cluster.

Each function returns rows: dicts with name, samples {"rust": [s...], "shell": [s...]}, note.
"""

import copy
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_CL_RUNS", "3"))
HOSTS = os.path.join(REPO, "scripts/libvirt-hosts.sh")
HOSTS_DIR = os.environ.get("OCF_RS_HOSTS_DIR", "/run/ocf-rs-hosts")
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
        v = cond()
        if v:
            return v
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
    f1 = FAKES[0]
    sh("pcs", "-f", cib, "resource", "create", f1, dummy)
    sh("pcs", "-f", cib, "constraint", "location", f1, "prefers", GN_NODE)
    root = ET.parse(cib).getroot()
    ours = {f1, GN_VM}
    out = [("resources", p) for p in root.find("configuration/resources") if p.get("id") in ours]
    out += [("constraints", c) for c in root.find("configuration/constraints") if c.get("rsc") in ours]
    # FAKE2..5: copies of what pcs wrote for FAKE1, with their own ids (pcs's start-up, about
    # half a second a call, kept out of the bench)
    for f in FAKES[1:]:
        for section, el in [x for x in out if x[1].get("id", "").startswith(f1) or x[1].get("rsc") == f1]:
            c = copy.deepcopy(el)
            for e in c.iter():
                for k, v in e.attrib.items():
                    e.set(k, v.replace(f1, f))
            out.append((section, c))
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
                wait_for(f"{who}: the DC idle", lambda: _idle_on(None), 60, 0.1)
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


def in_host(host):
    """The command prefix that runs a program in HOST's network, mount and UTS namespaces, as
    `scripts/libvirt-hosts.sh exec HOST` does but without a shell in between (nsenter execs the
    program: the pollers below run several programs a second, beside the guests they time);
    None when HOST is not up (its keeper process gone)."""
    try:
        with open(os.path.join(HOSTS_DIR, host, "keeper.pid")) as f:
            keeper = f.read().strip()
        if not keeper.isdigit():
            return None
        with open(f"/proc/{keeper}/comm") as f:
            if f.read().strip() != "sleep":
                return None
    except OSError:
        return None
    return ["nsenter", "-t", keeper, "-n", "-m", "-u", "--"]


def _on(host, *cmd, check=False, timeout=60):
    prefix = in_host(host)
    if prefix is None:
        if check:
            raise RuntimeError(f"host {host} is not up")
        return subprocess.CompletedProcess(cmd, 1, "", f"host {host} is not up")
    return sh(*prefix, *CLEAN, *cmd, check=check, timeout=timeout)


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


# ---------------------------------------------------------------- the three-node cluster

SCALE_NODES = ("ocfa", "ocfb", "ocfc")
SCALE_N = int(os.environ.get("BENCH_CL_VMS", "4"))
SCALE_MEM = os.environ.get("BENCH_CL_VM_MEMORY", "96")
SCALE_PREFIX = {"rust": "rs", "shell": "sh"}


def _in(host, *cmd):
    """CMD inside HOST of scripts/libvirt-hosts.sh, or here for None; not checked."""
    return sh(*cmd, check=False, timeout=20) if host is None else _on(host, *cmd, timeout=20)


def _mon_on(host):
    """crm_mon's XML as HOST (None: this machine) sees it: {node: online}, {resource id:
    (role, node)}, the DC's name."""
    out = _in(host, "crm_mon", "-1", "--output-as=xml").stdout
    try:
        root = ET.fromstring(out)
    except ET.ParseError:
        return {}, {}, None
    nodes = {n.get("name"): n.get("online") == "true" for n in root.iter("node") if n.get("type")}
    rscs = {}
    for r in root.iter("resource"):
        n = r.find("node")
        rscs[r.get("id")] = (r.get("role"), n.get("name") if n is not None else None)
    dc = root.find("summary/current_dc")
    return nodes, rscs, dc.get("name") if dc is not None and dc.get("present") == "true" else None


def _idle_on(host, dc=False):
    """Whether the DC (as HOST sees it; DC: its name when the caller has it already) is idle."""
    if dc is False:
        dc = _mon_on(host)[2]
    if not dc:
        return False
    st = _in(host, "crmadmin", "-q", "-S", dc)
    return "S_IDLE" in st.stdout + st.stderr


def _qemu_count(domain):
    """qemu processes running DOMAIN on this machine, in every host's namespaces."""
    n = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/comm") as f:
                if not f.read().startswith("qemu-system-"):
                    continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if f"-name\0guest={domain},".encode() in f.read():
                    n += 1
        except OSError:
            pass
    return n


def _first_at(log, needles):
    """The time (seconds since the epoch) of the first line of a pacemaker LOG holding any of
    NEEDLES ("Dec 01 18:10:42.384 ..." in local time, this year), or None."""
    for line in log.splitlines():
        if any(n in line for n in needles):
            try:
                stamp = datetime.strptime(f"{datetime.now().year} {line[:19]}", "%Y %b %d %H:%M:%S.%f")
            except ValueError:
                continue
            return stamp.timestamp()
    return None


def _max_concurrent(log, op):
    """The most OP operations the executor's LOG shows running at once."""
    n = m = 0
    for line in log.splitlines():
        if f"Requesting local execution of {op} operation" in line:
            n += 1
            m = max(m, n)
        elif f"Result of {op} operation" in line:
            n -= 1
    return m


def _scale_config(work, xmls):
    """The guests' resources of each agent set, {set: [primitive]}: the first as `pcs resource
    create` writes it (pcs -f on a copy of the live CIB), the others copies of it with their
    own ids and config (pcs's start-up, about half a second a call, kept out of the bench)."""
    cib = os.path.join(work, "scale-pcs.xml")
    _on("ocfa", "pcs", "cluster", "cib", cib, check=True)
    vm0 = next(iter(xmls))
    for who, prefix in SCALE_PREFIX.items():
        _on("ocfa", "pcs", "-f", cib, "resource", "create", f"{prefix}-{vm0}", SETS[who][0], f"hypervisor={URI}",
            f"config={xmls[vm0]}", "migration_transport=tcp", "meta", "allow-migrate=true",
            "op", "monitor", "interval=10s", "timeout=30s", check=True)
    resources = ET.parse(cib).getroot().find("configuration/resources")
    out = {}
    for who, prefix in SCALE_PREFIX.items():
        first = resources.find(f"primitive[@id='{prefix}-{vm0}']")
        if first is None or first.find(f".//nvpair[@name='config'][@value='{xmls[vm0]}']") is None:
            raise RuntimeError(f"pcs -f wrote no primitive {prefix}-{vm0} with config={xmls[vm0]}")
        out[who] = [first]
        for vm, xml in list(xmls.items())[1:]:
            p = copy.deepcopy(first)
            for el in p.iter():
                for k, v in el.attrib.items():
                    el.set(k, v.replace(xmls[vm0], xml).replace(f"{prefix}-{vm0}", f"{prefix}-{vm}"))
            out[who].append(p)
    return out


def _push_resources(work, host, add=(), remove=()):
    """The live configuration with the primitives ADD added and the ids REMOVE taken out,
    replaced in one CIB update from HOST (as `pcs cluster cib-push --config` does)."""
    conf = ET.fromstring(_on(host, "cibadmin", "-Q", "-o", "configuration", check=True).stdout)
    res = conf.find("resources")
    for p in list(res):
        if p.get("id") in remove:
            res.remove(p)
    for p in add:
        res.append(p)
    path = os.path.join(work, "scale-push.xml")
    ET.ElementTree(conf).write(path)
    _on(host, "cibadmin", "--replace", "-o", "configuration", "--xml-file", path, check=True)


def scale_times(work, make_domain):
    """The drain and node-loss rows (see the module's doc). The hosts ocfa, ocfb and ocfc of
    scripts/libvirt-hosts.sh must be up; the cluster is started here and stopped at the end."""
    tmp = tempfile.mkdtemp(prefix="cl-scale.", dir=work)
    vms = [f"bench-sc{i:02d}" for i in range(1, SCALE_N + 1)]
    cons = {vm: os.path.join(work, f"{vm}.console") for vm in vms}
    xmls = {vm: make_domain(vm, "--memory", SCALE_MEM, "--console", cons[vm]) for vm in vms}
    stage = f"{SCALE_N} guests of {SCALE_MEM} MiB, three-node cluster (ocfa, ocfb, ocfc), under {accel(xmls[vms[0]])}"
    rows = {k: {"name": name, "note": stage, "order": n, "chart": chart, "samples": {"rust": [], "shell": []}}
            for n, (k, name, chart) in enumerate((
                ("create", f"{SCALE_N} guests created in one CIB update -> all Started", "scale: create"),
                ("drain", "crm_standby of the busiest node -> its guests live-migrated, all Started elsewhere",
                 "scale: drain"),
                ("loss", "power cut of the busiest node -> its guests Started on the survivors",
                 "scale: node loss")), start=4)}
    conc = {"rust": [], "shell": []}
    noticed = {"rust": [], "shell": []}  # power cut -> the first start of a lost guest requested
    nodes_sh = "NODES=(ocfa ocfb ocfc); NODES_CLUSTER=ocfbscale; "
    _nodes(tmp, "nodes_init ocfbscale ocfa ocfb ocfc; seed_option stonith-enabled false; "
                "seed_option dc-deadtime 2s; seed_option load-threshold 1000%; seed_option node-action-limit 16; "
                "seed_rsc_defaults resource-stickiness 100; "
                + "; ".join(f"node_files {h}; node_start {h}" for h in SCALE_NODES))
    logs = {h: os.path.join(tmp, h, "log/pacemaker.log") for h in SCALE_NODES}

    def all_online(host="ocfa"):
        nodes = _mon_on(host)[0]
        return all(nodes.get(h) for h in SCALE_NODES)

    def placed(ids, avoid=None, host="ocfa"):
        """{id: node} once every id is Started (off AVOID) and the DC is idle, else None."""
        _, rscs, dc = _mon_on(host)
        where = {r: rscs.get(r, (None, None)) for r in ids}
        if any(role != "Started" or node in (None, avoid) for role, node in where.values()):
            return None
        return {r: n for r, (_, n) in where.items()} if _idle_on(host, dc) else None

    def busiest(where):
        counts = {h: sum(1 for n in where.values() if n == h) for h in SCALE_NODES}
        return max(sorted(counts), key=lambda h: counts[h])

    def cycle(i, who, last):
        """One run of agent set WHO: create, drain, node loss, then no guest of the set and,
        unless LAST, the lost node back in the cluster. A step's time counts only when its
        checks passed; a failed check is a warning."""
        ids = [p.get("id") for p in config[who]]
        dom = {f"{SCALE_PREFIX[who]}-{vm}": vm for vm in vms}
        tag = f"scale run {i + 1} ({who})"
        marks = {vm: console_size(cons[vm]) for vm in vms}
        t0 = time.time()
        _push_resources(work, "ocfa", add=config[who])
        where = wait_for(f"{tag}: every guest Started, the DC idle", lambda: placed(ids), 300)
        t_create = time.time() - t0
        for vm in vms:
            wait_for(f"{tag}: GUEST-READY of {vm}", lambda vm=vm: "GUEST-READY" in console_text(cons[vm], marks[vm]), 120)
        if [n for vm in vms if (n := _qemu_count(vm)) != 1]:
            raise RuntimeError(f"{tag}: domains not running exactly once after the create")
        rows["create"]["samples"][who].append(t_create)

        h = busiest(where)
        moved = [r for r, n in where.items() if n == h]
        lmark = {x: console_size(logs[x]) for x in SCALE_NODES}
        drain_marks = {vm: console_size(cons[vm]) for vm in vms}
        t0 = time.time()
        _on("ocfa", "crm_standby", "-N", h, "-v", "on", check=True)
        wait_for(f"{tag}: every guest Started off {h}, the DC idle", lambda: placed(ids, avoid=h), 300)
        t_drain = time.time() - t0
        log = "".join(console_text(logs[x], lmark[x]) for x in SCALE_NODES)
        drain_ok = True
        for r in moved:
            if f"Result of migrate_from operation for {r} on " not in log or f"Result of start operation for {r} " in log:
                warn(f"warning: {tag}: the drain of {h} moved {r} without a live migration")
                drain_ok = False
        concurrent = _max_concurrent(console_text(logs[h], lmark[h]), "migrate_to")
        _on("ocfa", "crm_standby", "-N", h, "-v", "off", check=True)
        wait_for(f"{tag}: the DC idle after {h} left standby", lambda: _idle_on("ocfa"), 60)

        where = wait_for(f"{tag}: every guest Started", lambda: placed(ids), 60)
        lost = busiest(where)
        survivor = next(x for x in SCALE_NODES if x != lost)
        gone = [r for r, n in where.items() if n == lost]
        lmark = {x: console_size(logs[x]) for x in SCALE_NODES if x != lost}
        marks = {vm: console_size(cons[vm]) for vm in vms}
        t0 = time.time()
        sh(HOSTS, "kill", lost, timeout=60)
        wait_for(f"{tag}: every guest Started off {lost} (asked on {survivor}), the DC idle",
                 lambda: placed(ids, avoid=lost, host=survivor), 300)
        t_loss = time.time() - t0
        log = "".join(console_text(logs[x], lmark[x]) for x in lmark)
        first = _first_at(log, [f"Requesting local execution of start operation for {r} " for r in gone])
        loss_ok = True
        twice = [f"{vm}:{n}" for vm in vms if (n := _qemu_count(vm)) != 1]
        if twice:
            warn(f"warning: {tag}: domains not running exactly once after the node loss: {' '.join(twice)}")
            loss_ok = False
        if "Result of migrate_to operation" in log or "Result of migrate_from operation" in log:
            warn(f"warning: {tag}: a migration was tried from the dead node {lost}")
            loss_ok = False

        if not last:  # the lost node boots back while its guests finish booting elsewhere
            sh(HOSTS, "up", lost, timeout=120)
            _nodes(tmp, nodes_sh + f"node_files {lost}; node_start {lost}")
        # a guest's power button does nothing before its init is up: the guests restarted by
        # the recovery finish their boot before the deletion stops them
        for r in gone:
            wait_for(f"{tag}: GUEST-READY of {dom[r]} after its restart",
                     lambda vm=dom[r]: "GUEST-READY" in console_text(cons[vm], marks[vm]), 120)
        # boots since the drain, counted now that a restart would have reached its console:
        # none by the drain, one for each guest of the lost node
        for vm in vms:
            want = 1 if f"{SCALE_PREFIX[who]}-{vm}" in gone else 0
            n = console_text(cons[vm], drain_marks[vm]).count("GUEST-BOOT")
            if n != want:
                warn(f"warning: {tag}: {vm} booted {n} times since the drain, not {want}")
                drain_ok = drain_ok and want == 1
                loss_ok = loss_ok and want == 0
        if drain_ok:
            rows["drain"]["samples"][who].append(t_drain)
            conc[who].append(concurrent)
        if loss_ok:
            rows["loss"]["samples"][who].append(t_loss)
            if first is not None:
                noticed[who].append(first - t0)
        print(f"bench: {tag}: create {t_create:.2f} s, drain of {h} {t_drain:.2f} s ({len(moved)} guests, "
              f"{concurrent} migrate_to at once{'' if drain_ok else ', not counted'}), node loss of {lost} "
              f"{t_loss:.2f} s{'' if loss_ok else ' (not counted)'}", flush=True)
        if not last:
            # the guests are deleted only once the lost node has rejoined and the DC is idle:
            # Pacemaker 2.1.5 lost track of guests deleted while a node was joining (they were
            # never stopped; seen once here)
            wait_for(f"{tag}: {lost} online again", lambda: all_online(survivor), 90)
            wait_for(f"{tag}: the DC idle with {lost} back", lambda: _idle_on(survivor), 90)
        _push_resources(work, survivor, remove=set(ids))
        wait_for(f"{tag}: no guest of the set left running", lambda: all(_qemu_count(vm) == 0 for vm in vms), 120)
        if not last:
            wait_for(f"{tag}: the DC idle after the deletion", lambda: _idle_on(survivor), 60)

    try:
        wait_for("ocfa, ocfb and ocfc online", all_online, 90, 0.5)
        wait_for("the DC idle", lambda: _idle_on("ocfa"), 60, 0.5)
        config = _scale_config(work, xmls)
        try:
            for i in range(RUNS):
                for who in order(i):
                    cycle(i, who, i == RUNS - 1 and who == order(i)[-1])
        except RuntimeError as e:
            # a run that broke off leaves the stage in an unknown state: the runs so far stand
            warn(f"warning: the scale rows stopped early: {e}")
        if conc["rust"] or conc["shell"]:
            rows["drain"]["note"] = stage + "; migrate_to at once on the drained node (median): " + ", ".join(
                f"{w} {med(conc[w]):g}" for w in SETS if conc[w])
        if noticed["rust"] or noticed["shell"]:
            rows["loss"]["note"] = stage + "; of it, until the survivors' first start of a lost guest (corosync " \
                "noticing the loss, Pacemaker's election and plan; no agent runs): " + ", ".join(
                    f"{w} {med(noticed[w]):.2f} s" for w in SETS if noticed[w])
    finally:
        try:
            _nodes(tmp, nodes_sh + "nodes_stop_all")
        except (subprocess.SubprocessError, OSError) as e:
            warn(f"warning: stopping the three-node cluster: {e}")
    return list(rows.values())

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
            "The drain and node-loss rows run on a three-node cluster (ocfa, ocfb, ocfc of "
            "scripts/libvirt-hosts.sh, one corosync and pacemaker each; stonith-enabled=false, as no fencing "
            "device exists here; load-threshold=1000% and node-action-limit=16, resource-stickiness=100), as in "
            "the scale layer of the tests but with fewer guests (BENCH_CL_VMS), so that three runs per agent "
            "set fit in `make bench`. Each run of a set: its guests created in one CIB update (both sets with "
            "the same parameters: hypervisor, config, migration_transport=tcp, allow-migrate=true, a 10 s "
            "monitor); standby of the node holding the most of them, timed until every guest is Started "
            "elsewhere and the DC idle (each checked to have moved by live migration, no guest booted again), "
            "then the node back out of standby; a power cut of the node now holding the most (every process "
            "in its namespaces killed at once), timed until the survivors run every guest and the DC is idle "
            "(each domain checked to run exactly once, each of its guests booted once); then the guests deleted "
            "and the node booted back into the cluster. A step whose check failed is not counted; its "
            "warning is listed below the tables.", "",
            "A dozen guests, as the scale layer runs them: `make test-scale` times the same steps once per "
            "agent set (ocf:rust first, then ocf:heartbeat on the same guests), and a run whose every case "
            f"passed leaves them in `{os.path.relpath(SCALE_TIMINGS, REPO)}`; `make bench` copies the last "
            "such run below, with its date, as what it is.", ""]
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
