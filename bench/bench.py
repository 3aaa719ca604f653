#!/usr/bin/env python3
"""make bench: ocf:rust agents against the shell agents of resource-agents, side by side.

Both agents run against the same libvirtd, the same guests and the same environment,
alternating A/B run by run so that machine drift cancels out. For each row: median wall
time, median CPU time (user+sys of the agent and every process it waited for), processes
spawned (execve calls under strace, crm_resource counted apart) and peak RSS. The
VirtualDomain rows run once with no cluster and autoset_utilization_*=false (the rows of
earlier reports), and probe, start, monitor and stop run again as a cluster runs them:
default parameters under the one-node cluster of scripts/cluster.sh, which the bench
starts and stops itself (see cluster_rows). Writes bench/RESULTS.md and a chart of the
ratios (gnuplot), and prints the table.

Environment: BENCH_RUNS (fast rows, default 15), BENCH_SLOW_RUNS (start/stop rows,
default 3), BENCH_SCALE (guest counts for the scale rows, default "1 10 25"),
BENCH_MIG_RUNS (live migrations per agent between the two libvirt hosts of
scripts/libvirt-hosts.sh, default 4; 0 skips them), BENCH_CL_RUNS (runs per agent set of each cluster-level row, see
bench/cluster_level.py, default 3; 0 skips them), BENCH_CL_VMS and BENCH_CL_VM_MEMORY (guests of the
drain and node-loss rows and their MiB, default 4 and 96; 0 guests skips those rows), BENCH_OUT
(output directory, default bench/).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import cluster_level

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("BENCH_OUT", os.path.join(REPO, "bench"))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
SLOW_RUNS = int(os.environ.get("BENCH_SLOW_RUNS", "3"))
DEAF_RUNS = max(2, SLOW_RUNS // 2)  # the stop of a guest that ignores ACPI: seconds a run
SCALE = [int(n) for n in os.environ.get("BENCH_SCALE", "1 10 25").split()]
OCF = "/usr/lib/ocf/resource.d"
RUST = {"VirtualDomain": f"{OCF}/rust/VirtualDomain", "Dummy": f"{OCF}/rust/Dummy"}
SHELL = {"VirtualDomain": f"{OCF}/heartbeat/VirtualDomain", "Dummy": f"{OCF}/heartbeat/Dummy"}
URI = "qemu:///system"
HOSTS = os.path.join(REPO, "scripts/libvirt-hosts.sh")
TIME = "/usr/bin/time"  # GNU time (the time package), for the peak resident set
MIG_RUNS = int(os.environ.get("BENCH_MIG_RUNS", "4"))
WORK = tempfile.mkdtemp(prefix="ocf-rs-bench.")
CONSOLE_DIR = "/var/log/ocf-rs-guests"
CLUSTER = os.path.join(REPO, "scripts/cluster.sh")
NO_CLUSTER_VD = "no cluster, autoset_utilization_*=false"
IN_CLUSTER = "one-node cluster, default parameters"


WARNINGS = []
T_START = time.time()
CL_ROWS = []  # the cluster-level rows (bench/cluster_level.py)


def progress(what):
    """A line on stderr for each finished part, with the time since the bench began."""
    print(f"bench: {time.time() - T_START:6.1f} s: {what}", file=sys.stderr, flush=True)


def warn(msg):
    """A sign that a row does not measure what it names: printed, and listed in RESULTS.md."""
    print(msg, file=sys.stderr)
    WARNINGS.append(msg)


cluster_level.warn = warn


def cluster_level_rows(what, fn, *args):
    """The rows of one cluster-level measure into CL_ROWS; a failure is a warning, not the end
    of the bench."""
    if cluster_level.RUNS <= 0:
        return
    try:
        CL_ROWS.extend(fn(*args))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or ""
        warn(f"warning: the cluster-level rows of {what} failed: {e} {detail.strip()}")
    progress(f"the cluster-level rows of {what}")


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


def virsh(*args, check=False):
    return sh("virsh", "-q", "-c", URI, *args, check=check)


class Sample:
    def __init__(self, wall, cpu, rc, minflt=0):
        self.wall, self.cpu, self.rc, self.minflt = wall, cpu, rc, minflt


def run_once(cmd, env):
    """One invocation: wall time, user+sys of the whole waited-for tree, exit code."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall, ru.ru_utime + ru.ru_stime, p.returncode, ru.ru_minflt)


def execs_and_rss(cmd, env, prefix=(), program="crm_resource"):
    """One extra, untimed invocation: the programs it executed (the agent itself included;
    strace, run after `prefix` so that nsenter is not counted), how many of them were
    `program` (by base name), and the peak resident set (KiB) of its largest process.

    The resident set comes from GNU time's %M, not from the timed runs' rusage: a child forked
    from this Python process carries Python's resident set until it execs, and the kernel
    counts that high-water mark; GNU time forks from a ~2 MiB process instead. Tracing does not
    change a tracee's memory, so both come from the same run (GNU time's own execve is not
    counted)."""
    trace = os.path.join(WORK, "strace.out")
    out = os.path.join(WORK, "rss.out")
    for stale in (trace, out):  # a run that writes neither must not read the last one's
        try:
            os.remove(stale)
        except FileNotFoundError:
            pass
    subprocess.run(list(prefix) + ["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace,
                                   TIME, "-f", "%M", "-o", out] + cmd,
                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        with open(trace) as f:
            done = [line for line in f if "execve(" in line and "= 0" in line]
    except OSError:
        done = []
    # the first program strace started is GNU time itself, not the agent's
    if done and done[0].split("execve(", 1)[1].startswith(f'"{TIME}"'):
        done = done[1:]
    else:
        warn(f"warning: {cmd[-2]} {cmd[-1]}: strace did not show GNU time starting first; execs counted as traced")
    pat = re.compile(r'execve\("[^"]*/' + re.escape(program) + '"')
    try:
        with open(out) as f:
            rss = int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        rss = 0
    return len(done), sum(1 for line in done if pat.search(line)), rss


def base_env(extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "OCF_ROOT": "/usr/lib/ocf", "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
           "HA_RSCTMP": os.path.join(WORK, "rsctmp"), "HA_VARRUN": os.path.join(WORK, "varrun")}
    env.update(extra)
    return env


class Row:
    def __init__(self, group, name, action, env, runs, setup=None, teardown=None, agent="VirtualDomain",
                 setting=None):
        self.group, self.name, self.action, self.env = group, name, action, env
        self.runs, self.setup, self.teardown, self.agent = runs, setup, teardown, agent
        if setting is None:
            setting = NO_CLUSTER_VD if agent == "VirtualDomain" else "no cluster"
        self.setting = setting
        self.samples = {"shell": [], "rust": []}
        self.execs = {}
        self.crm = {}
        self.rss = {}


def in_host(host):
    """The command prefix that runs a program inside a libvirt host of scripts/libvirt-hosts.sh
    (its network, mount and UTS namespaces). nsenter execs the program: no extra process."""
    prefix = cluster_level.in_host(host)
    if prefix is None:
        raise RuntimeError(f"libvirt host {host} is not up")
    return prefix


def run_row(row):
    envs = base_env(row.env)
    for i in range(row.runs):
        # Alternate which agent goes first, so neither always follows the other.
        order = ["shell", "rust"] if i % 2 == 0 else ["rust", "shell"]
        for who in order:
            agent = (SHELL if who == "shell" else RUST)[row.agent]
            if row.setup:
                row.setup()
            s = run_once([agent, row.action], envs)
            row.samples[who].append(s)
            if row.teardown:
                row.teardown(who, s)
    for who in ("shell", "rust"):
        agent = (SHELL if who == "shell" else RUST)[row.agent]
        if row.setup:
            row.setup()
        row.execs[who], row.crm[who], row.rss[who] = execs_and_rss([agent, row.action], envs)
        if row.teardown:
            row.teardown(who, None)
    bad = {w: [s.rc for s in row.samples[w] if s.rc not in expected_rc(row)] for w in row.samples}
    if any(bad.values()):
        warn(f"warning: {row.name}: unexpected exit codes {bad}")
    progress(f"{row.group} {row.name} ({row.setting})")


def expected_rc(row):
    return {7} if "stopped" in row.name else {0}


# ---------------------------------------------------------------- guests

def destroy_after_start(vm, what):
    """The teardown of a start row: warns when the measured start left `vm` not running, then
    destroys it for the next run."""
    def teardown(who, s):
        state = virsh("domstate", vm).stdout.strip()
        if s is not None and state != "running":
            warn(f"warning: {what} by {who} left {vm} {state}")
        virsh("destroy", vm)
    return teardown


def make_domain(name, *flags):
    path = os.path.join(WORK, f"{name}.xml")
    sh(os.path.join(REPO, "scripts/make-domain.sh"), name, path, *flags)
    return path


def console(name):
    return os.path.join(CONSOLE_DIR, f"{name}.console")


def wait_ready(name, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(console(name), errors="replace") as f:
                if "GUEST-READY" in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"guest {name} never became ready")


def boot(name, xml, image=None):
    """NAME booted and ready (its init up, the power button handled). With IMAGE, the first
    call saves the ready guest's memory image there (virsh save) and every later call restores
    it (virsh restore: about 0.5 s where a boot under TCG takes about 3 s), for a guest whose
    own behaviour is not part of what a row measures: a restored guest takes about 0.1 s longer
    to power off on the ACPI button than a booted one."""
    virsh("destroy", name)
    if image and os.path.exists(image):
        virsh("restore", image, check=True)
        return
    try:
        os.remove(console(name))
    except FileNotFoundError:
        pass
    virsh("create", xml, check=True)
    wait_ready(name)
    if image:
        virsh("save", name, image, check=True)
        virsh("restore", image, check=True)


def gone(name):
    return virsh("domstate", name).returncode != 0 or "shut off" in virsh("domstate", name).stdout


# Lifecycle events with timestamps, to measure stop latency after the actual power-off.
class EventLog:
    def __init__(self):
        self.path = os.path.join(WORK, "events.log")
        self.proc = subprocess.Popen(["virsh", "-c", URI, "event", "--all", "--loop", "--timestamp"],
                                     stdout=open(self.path, "w"), stderr=subprocess.DEVNULL)

    def stopped_at(self, name, after):
        """Epoch of the first 'Stopped' lifecycle event of `name` after `after`."""
        pat = re.compile(r"^(\S+ \S+): event 'lifecycle' for domain '?" + re.escape(name) + r"'?: Stopped")
        with open(self.path) as f:
            for line in f:
                m = pat.match(line)
                if m:
                    ts = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f%z").timestamp()
                    if ts >= after:
                        return ts
        return None

    def close(self):
        self.proc.terminate()


def main():
    for tool in ("strace", "virsh", TIME):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (scripts/install-deps.sh)")
    for a in list(RUST.values()) + list(SHELL.values()):
        if not os.access(a, os.X_OK):
            sys.exit(f"bench: {a} is missing (make install; resource-agents package)")
    os.makedirs(os.path.join(WORK, "rsctmp"), exist_ok=True)
    os.makedirs(os.path.join(WORK, "varrun"), exist_ok=True)
    events = EventLog()
    rows = []

    vm = "bench-vm"
    vm_xml = make_domain(vm)
    deaf = "bench-deaf"
    deaf_xml = make_domain(deaf, "--ignore-acpi")
    vd = {"OCF_RESOURCE_INSTANCE": vm, "OCF_RESKEY_config": vm_xml, "OCF_RESKEY_hypervisor": URI,
          "OCF_RESKEY_autoset_utilization_cpu": "false", "OCF_RESKEY_autoset_utilization_hv_memory": "false",
          "OCF_RESKEY_autoset_utilization_host_memory": "false"}
    rec = {"OCF_RESKEY_CRM_meta_interval": "10000", "OCF_RESKEY_CRM_meta_timeout": "30000"}

    # The floor: a program that only loads libvirt and exits.
    floor = os.path.join(WORK, "libvirt-floor")
    sh("sh", "-c", f"echo 'int main(void){{return 0;}}' | cc -x c - -Wl,--no-as-needed -lvirt -o {floor}")
    # And the floor of starting any program at all here (fork + exec + exit).
    empty = os.path.join(WORK, "empty")
    sh("sh", "-c", f"echo 'int main(void){{return 0;}}' | cc -O2 -x c - -o {empty}")

    rows.append(Row("VirtualDomain", "meta-data", "meta-data", {}, RUNS))
    rows.append(Row("VirtualDomain", "validate-all", "validate-all", vd, RUNS))
    virsh("destroy", vm)
    rows.append(Row("VirtualDomain", "probe (stopped)", "monitor", vd, RUNS))
    for r in rows:
        run_row(r)

    boot(vm, vm_xml)
    mon = Row("VirtualDomain", "monitor (running guest)", "monitor", {**vd, **rec}, RUNS)
    run_row(mon)
    rows.append(mon)
    virsh("destroy", vm)

    def stopped_setup():
        virsh("destroy", vm)

    destroy_after = destroy_after_start(vm, "start")

    start = Row("VirtualDomain", "start (to running)", "start", {**vd, "OCF_RESKEY_CRM_meta_timeout": "90000"},
                SLOW_RUNS, setup=stopped_setup, teardown=destroy_after)
    run_row(start)
    rows.append(start)

    latencies = {"shell": [], "rust": []}
    marks = {}

    def running_setup():
        boot(vm, vm_xml)
        marks["t0"] = time.time()

    def after_stop(who, s):
        end = time.time()
        if not gone(vm):
            warn(f"warning: stop by {who} left {vm} running")
            virsh("destroy", vm)
        if s is not None:
            time.sleep(0.2)
            at = events.stopped_at(vm, marks["t0"])
            if at is not None:
                latencies[who].append(max(0.0, end - at))

    stop = Row("VirtualDomain", "stop (graceful)", "stop", {**vd, "OCF_RESKEY_CRM_meta_timeout": "90000"},
               SLOW_RUNS, setup=running_setup, teardown=after_stop)
    run_row(stop)
    rows.append(stop)

    vd_deaf = {**vd, "OCF_RESOURCE_INSTANCE": deaf, "OCF_RESKEY_config": deaf_xml,
               "OCF_RESKEY_CRM_meta_timeout": "12000"}

    # it ignores the button: its stop takes the same course restored or booted (see boot)
    deaf_image = os.path.join(WORK, f"{deaf}.image")

    def deaf_setup():
        boot(deaf, deaf_xml, deaf_image)

    def deaf_after(who, s):
        if not gone(deaf):
            warn(f"warning: stop by {who} left {deaf} running")
            virsh("destroy", deaf)

    stop_deaf = Row("VirtualDomain", "stop (guest ignores ACPI, 12 s timeout)", "stop", vd_deaf,
                    DEAF_RUNS, setup=deaf_setup, teardown=deaf_after)
    run_row(stop_deaf)
    rows.append(stop_deaf)

    # Scale: the monitor of one guest while N guests run on the host. The libvirt hosts of
    # scripts/libvirt-hosts.sh (for the migration and scale rows next) come up while the last
    # guests boot, unmeasured: the last row runs beside their idle daemons.
    scale_rows = []
    running = []
    hosts_up = None
    hosts_ready = False
    try:
        boot(vm, vm_xml)
        running.append(vm)
        for n in SCALE:
            if n == SCALE[-1]:
                hosts_up = subprocess.Popen([HOSTS, "up"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True)
            while len(running) < n:
                name = f"bench-scale-{len(running)}"
                xml = make_domain(name)
                virsh("destroy", name)
                virsh("create", xml, check=True)
                running.append(name)
            for name in running:
                wait_ready(name, timeout=300)
            if hosts_up is not None and hosts_up.returncode is None:
                err = hosts_up.communicate()[1]
                if hosts_up.returncode != 0:
                    raise RuntimeError(f"scripts/libvirt-hosts.sh up failed: {err.strip()}")
            time.sleep(3)  # let the guests settle to idle
            r = Row("VirtualDomain", f"monitor with {n} guest(s) running", "monitor", {**vd, **rec}, RUNS)
            run_row(r)
            scale_rows.append(r)
        if hosts_up is None:
            sh(HOSTS, "up")
        hosts_ready = True
    finally:
        # a bench that fails here leaves neither the guests nor half-started hosts behind
        for name in running:
            virsh("destroy", name)
        if not hosts_ready:
            if hosts_up is not None and hosts_up.returncode is None:
                hosts_up.communicate()
            sh(HOSTS, "down", check=False)
    rows.extend(scale_rows)

    try:
        if MIG_RUNS > 0:
            rows.extend(migration_rows())
        scale_cluster_rows()
    finally:
        sh(HOSTS, "down", check=False)
    rows.extend(cluster_rows(vm, vm_xml))

    dstate = os.path.join(WORK, "dummy.state")
    dm = {"OCF_RESOURCE_INSTANCE": "bench-dummy", "OCF_RESKEY_state": dstate}
    d_md = Row("Dummy", "meta-data", "meta-data", {}, RUNS, agent="Dummy")
    run_row(d_md)
    open(dstate, "w").close()
    d_mon = Row("Dummy", "monitor (running)", "monitor", {**dm, **rec}, RUNS, agent="Dummy")
    run_row(d_mon)
    d_start = Row("Dummy", "start", "start", dm, RUNS, agent="Dummy",
                  setup=lambda: os.path.exists(dstate) and os.remove(dstate))
    run_row(d_start)
    d_stop = Row("Dummy", "stop", "stop", dm, RUNS, agent="Dummy",
                 setup=lambda: open(dstate, "w").close())
    run_row(d_stop)
    rows.extend([d_md, d_mon, d_start, d_stop])

    fl = floor_facts(floor, empty)
    events.close()
    write_results(rows, latencies, fl)


def cluster_rows(vm, vm_xml):
    """The VirtualDomain rows as a cluster runs the agent: the default parameters
    (autoset_utilization_* true) under the one-node cluster of scripts/cluster.sh, with the
    environment Pacemaker's executor gives an agent (OCF_RESOURCE_INSTANCE,
    OCF_RESKEY_crm_feature_set), so the shell agent calls crm_resource as it does there.
    A disabled primitive of that id exists in the CIB (an ocf:pacemaker:Dummy, so the cluster
    itself never acts on the guest), for crm_resource to read and write its utilization.
    The bench starts that cluster itself and stops it at the end; it skips these rows beside
    a cluster it did not start (scripts/cluster.sh status answers 0 or 4)."""
    st = sh(CLUSTER, "status", check=False)
    if st.returncode in (0, 4):
        print(f"bench: a cluster runs here that the bench did not start ({st.stdout.strip()}"
              f"{st.stderr.strip()}); skipping the cluster rows (stop it first: scripts/cluster.sh stop)",
              file=sys.stderr)
        return []
    up = sh(CLUSTER, "start", check=False)
    if up.returncode != 0:
        print(f"bench: scripts/cluster.sh start failed, skipping the cluster rows: {up.stderr.strip()}",
              file=sys.stderr)
        sh(CLUSTER, "stop", check=False)
        return []
    try:
        sh("cibadmin", "-C", "-o", "resources", "-X",
           f'<primitive id="{vm}" class="ocf" provider="pacemaker" type="Dummy">'
           f'<meta_attributes id="{vm}-meta"><nvpair id="{vm}-meta-target-role" name="target-role" '
           'value="Stopped"/></meta_attributes></primitive>')
        feature = re.search(r'crm_feature_set="([^"]+)"', sh("cibadmin", "-Q").stdout)
        rsctmp = os.path.join(WORK, "rsctmp-cluster")
        os.makedirs(rsctmp, exist_ok=True)
        node = sh("crm_node", "-n").stdout.strip()
        vd = {"OCF_RESOURCE_INSTANCE": vm, "OCF_RESOURCE_TYPE": "VirtualDomain",
              "OCF_RESKEY_config": vm_xml, "OCF_RESKEY_hypervisor": URI,
              "OCF_RESKEY_crm_feature_set": feature.group(1) if feature else "3.16.2",
              "OCF_RESKEY_CRM_meta_on_node": node, "HA_RSCTMP": rsctmp}
        rec = {"OCF_RESKEY_CRM_meta_interval": "10000", "OCF_RESKEY_CRM_meta_timeout": "30000"}
        slow = {"OCF_RESKEY_CRM_meta_timeout": "90000"}
        rows = []

        def destroy():
            virsh("destroy", vm)

        destroy_after = destroy_after_start(vm, "cluster start")

        def after_stop(who, s):
            if not gone(vm):
                warn(f"warning: cluster stop by {who} left {vm} running")
                virsh("destroy", vm)

        destroy()
        probe = Row("VirtualDomain", "probe (stopped)", "monitor", vd, RUNS, setting=IN_CLUSTER)
        run_row(probe)
        start = Row("VirtualDomain", "start (to running)", "start", {**vd, **slow}, SLOW_RUNS,
                    setup=destroy, teardown=destroy_after, setting=IN_CLUSTER)
        run_row(start)
        boot(vm, vm_xml)
        # A start published the utilization; each agent's first monitor after it (not
        # measured) publishes what it still has to, as the cluster's first monitor would.
        # The rows are then the routine monitor, the one that runs every interval.
        for agent in (SHELL, RUST):
            run_once([agent["VirtualDomain"], "monitor"], base_env({**vd, **rec}))
        mon = Row("VirtualDomain", "monitor (running guest)", "monitor", {**vd, **rec}, RUNS, setting=IN_CLUSTER)
        run_row(mon)
        if not mon.crm.get("shell"):
            warn("warning: the shell agent's monitor under the cluster ran no crm_resource: "
                 "that row does not measure what a cluster runs")
        stop = Row("VirtualDomain", "stop (graceful)", "stop", {**vd, **slow}, SLOW_RUNS,
                   setup=lambda: boot(vm, vm_xml), teardown=after_stop, setting=IN_CLUSTER)
        run_row(stop)
        rows += [probe, start, mon, stop]
        util = sh("crm_resource", "-r", vm, "-z", "-g", "cpu", check=False).stdout.strip()
        if not util:
            warn(f"warning: no cpu utilization of {vm} in the CIB: crm_resource never succeeded?")
        virsh("destroy", vm)
        cluster_level_rows("the guest node", cluster_level.guest_node_times, WORK, CONSOLE_DIR)
        return rows
    finally:
        virsh("destroy", vm)
        sh(CLUSTER, "stop", check=False)


def scale_cluster_rows():
    """The drain and node-loss rows (bench/cluster_level.py scale_times) on the three libvirt
    hosts of scripts/libvirt-hosts.sh (up)."""
    if cluster_level.RUNS > 0 and cluster_level.SCALE_N > 0:
        cluster_level_rows("the three-node cluster", cluster_level.scale_times, WORK, make_domain)


def migration_rows():
    """migrate_to on the source and migrate_from on the target, between the two libvirt hosts of
    scripts/libvirt-hosts.sh (each agent in the host's namespaces, as Pacemaker runs it there,
    with migration_transport=tcp). One guest goes back and forth; each agent migrates it in
    turn (A/B alternated), then stops the source side as Pacemaker would. The hosts must be up."""
    uri = {h: sh(HOSTS, "uri", h).stdout.strip() for h in ("ocfa", "ocfb")}
    name = "bench-mig"
    xml = make_domain(name)
    for h in uri:
        os.makedirs(os.path.join(WORK, f"rsctmp-{h}"), exist_ok=True)
        sh("virsh", "-c", uri[h], "destroy", name, check=False)
    try:
        os.remove(console(name))
    except FileNotFoundError:
        pass
    sh("virsh", "-c", uri["ocfa"], "create", xml)
    wait_ready(name)
    mig = "two libvirt hosts, " + NO_CLUSTER_VD
    to_row = Row("VirtualDomain", "migrate_to (live, to the other host)", "migrate_to", {}, MIG_RUNS,
                 setting=mig)
    from_row = Row("VirtualDomain", "migrate_from (on the target)", "migrate_from", {}, MIG_RUNS,
                   setting=mig)
    where = ["ocfa"]

    def env_for(host, src, dst):
        return base_env({"OCF_RESOURCE_INSTANCE": name, "OCF_RESKEY_config": xml,
                         "OCF_RESKEY_hypervisor": URI, "OCF_RESKEY_migration_transport": "tcp",
                         "OCF_RESKEY_CRM_meta_migrate_source": src,
                         "OCF_RESKEY_CRM_meta_migrate_target": dst,
                         "OCF_RESKEY_CRM_meta_timeout": "60000", "OCF_RESKEY_CRM_meta_on_node": host,
                         "HA_RSCTMP": os.path.join(WORK, f"rsctmp-{host}"),
                         "OCF_RESKEY_autoset_utilization_cpu": "false",
                         "OCF_RESKEY_autoset_utilization_hv_memory": "false",
                         "OCF_RESKEY_autoset_utilization_host_memory": "false"})

    def one(who, measure):
        src = where[0]
        dst = "ocfb" if src == "ocfa" else "ocfa"
        agent = (SHELL if who == "shell" else RUST)["VirtualDomain"]
        for row, host in ((to_row, src), (from_row, dst)):
            env = env_for(host, src, dst)
            if measure == "extras":
                row.execs[who], row.crm[who], row.rss[who] = execs_and_rss([agent, row.action], env, in_host(host))
            else:
                row.samples[who].append(run_once(in_host(host) + [agent, row.action], env))
        run_once(in_host(src) + [agent, "stop"], env_for(src, src, dst))
        state = sh("virsh", "-c", uri[dst], "domstate", name, check=False).stdout.strip()
        if state != "running":
            raise RuntimeError(f"{who}: after migrating {src} -> {dst} the guest is '{state}' there")
        where[0] = dst

    for i in range(MIG_RUNS):
        for who in (["shell", "rust"] if i % 2 == 0 else ["rust", "shell"]):
            one(who, "time")
    for who in ("shell", "rust"):
        one(who, "extras")
    with open(console(name), errors="replace") as f:
        boots = f.read().count("GUEST-BOOT")
    if boots != 1:
        warn(f"warning: the migrated guest booted {boots} times (a migration fell back to a restart?)")
    for r in (to_row, from_row):
        bad = {w: [s.rc for s in r.samples[w] if s.rc != 0] for w in r.samples}
        if any(bad.values()):
            warn(f"warning: {r.name}: unexpected exit codes {bad}")
    for h in uri:
        sh("virsh", "-c", uri[h], "destroy", name, check=False)
    cluster_level_rows("the two-node cluster", cluster_level.pacemaker_migration_times, WORK, make_domain)
    return [to_row, from_row]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_ms(s):
    return f"{s * 1000:.1f} ms" if s < 10 else f"{s:.2f} s"


def versions():
    def v(cmd):
        try:
            return sh(*cmd).stdout.strip().splitlines()[0]
        except Exception:
            return "?"
    pkgs = sh("dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "resource-agents", "libvirt-daemon",
              "qemu-system-x86", "pacemaker", check=False).stdout.strip().replace("\n", ", ")
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "kernel": os.uname().release,
        "packages": pkgs,
        "ocf-rs": v(["git", "-C", REPO, "describe", "--always", "--dirty"]),
        "accel": "TCG" if "type='qemu'" in open(os.path.join(WORK, "bench-vm.xml")).read() else "KVM",
    }


def m(row, who, what):
    return med([getattr(s, what) for s in row.samples[who]])


def targets(rows, stop_latency, floor, empty_wall):
    """The issue's performance targets against this run, each once: reported, never asserted.
    The monitor targets are judged on the row as clusters run the agent (default parameters
    under the cluster); the no-cluster row is given beside it."""
    by = {(r.group, r.name, r.setting): r for r in rows}
    fw, fc = floor["wall"], floor["cpu"]
    out = ["## Targets", "", "| target | measured | met | why |", "|---|---|---|---|"]

    def line(target, measured, met, why):
        out.append(f"| {target} | {measured} | {'yes' if met else 'no'} | {why} |")

    mon_c = by.get(("VirtualDomain", "monitor (running guest)", IN_CLUSTER))
    mon_n = by.get(("VirtualDomain", "monitor (running guest)", NO_CLUSTER_VD))
    mon = mon_c or mon_n
    where = "one-node cluster, default parameters" if mon_c else "no cluster (the cluster rows did not run)"
    if mon:
        cs, cr = m(mon, "shell", "cpu"), m(mon, "rust", "cpu")
        ws, wr = m(mon, "shell", "wall"), m(mon, "rust", "wall")
        other_c = other_w = ""
        if mon_c and mon_n:
            other_c = f"; no cluster, autoset_utilization_*=false: {m(mon_n, 'shell', 'cpu') / m(mon_n, 'rust', 'cpu'):.1f}x"
            other_w = f"; no cluster, autoset_utilization_*=false: {m(mon_n, 'shell', 'wall') / m(mon_n, 'rust', 'wall'):.1f}x"
        crm = mon.crm.get("shell", 0)
        shell_does = (f"the shell agent runs {mon.execs.get('shell')} programs per monitor "
                      f"({crm} of them crm_resource, reading the utilization it would set) and costs {fmt_ms(cs)}; "
                      f"ours runs no other program and costs {fmt_ms(cr)}, {fmt_ms(fc)} of it the floor of loading libvirt")
        for kind, ratio, goal, other, fl in (("CPU", cs / cr, 10, other_c, cs / fc), ("wall time", ws / wr, 5, other_w, ws / fw)):
            met = ratio >= goal
            why = shell_does if met else (f"{shell_does}: any agent that loads libvirt is bound at "
                                          f"{fl:.1f}x here, and ours is at {ratio / fl * 100:.0f}% of that bound")
            line(f"monitor of a running guest: >= {goal}x less {kind}", f"{ratio:.1f}x ({where}){other}", met, why)
            shell_does = "as above"
        line("monitor of a running guest: no fork", f"{mon.execs.get('rust')} program run (the agent), "
             f"{mon.crm.get('rust', 0)} crm_resource", mon.execs.get("rust") == 1,
             "utilization goes to the CIB only when it changed since the value cached in the state file")
    line("stop latency after the power-off < 50 ms", fmt_ms(stop_latency), stop_latency < 0.05,
         "ours waits for libvirt's lifecycle event; the shell agent polls once a second")
    scale = [r for r in rows if r.name.startswith("monitor with ")]
    if len(scale) >= 2:
        first, last = m(scale[0], "rust", "cpu"), m(scale[-1], "rust", "cpu")
        sfirst, slast = m(scale[0], "shell", "cpu"), m(scale[-1], "shell", "cpu")
        grown = last > first * 1.1
        why = "the monitor looks its domain up by UUID, never lists the host's domains"
        if grown:
            # The lookup does not grow with the guests; the machine's load does.
            why = (f"not the agent's work: {why}; with that many TCG guests on this machine's "
                   f"cores every process is slower (the shell agent's CPU went "
                   f"{fmt_ms(sfirst)} -> {fmt_ms(slast)}, {(slast / sfirst - 1) * 100:+.0f}%)")
        line(f"no cost growth from {scale[0].name[13:]} to {scale[-1].name[13:]}",
             f"CPU {fmt_ms(first)} -> {fmt_ms(last)} ({(last / first - 1) * 100:+.0f}%)", not grown, why)
    dmd = by.get(("Dummy", "meta-data", "no cluster"))
    if dmd:
        w = m(dmd, "rust", "wall")
        # two decimals: next to a 1 ms target, "1.0 ms" could be either side of it
        line("Dummy meta-data < 1 ms", f"{w * 1000:.2f} ms wall", w < 0.001,
             f"an empty C program takes {empty_wall * 1000:.2f} ms wall here (fork and exec from the harness): "
             f"the agent's own cost above it is {max(0.0, w - empty_wall) * 1000:.2f} ms")
    out.append("")
    return out


def floor_facts(floor, empty):
    """What loading libvirt is, measured: the timed runs, the dynamic loader's own statistics
    (LD_DEBUG=statistics), the libraries it maps, its system calls and page faults."""
    env = base_env({})
    fs = [run_once([floor], env) for _ in range(RUNS)]
    es = [run_once([empty], env) for _ in range(RUNS)]
    facts = {"wall": med([s.wall for s in fs]), "cpu": med([s.cpu for s in fs]),
             "faults": med([s.minflt for s in fs]), "empty_wall": med([s.wall for s in es]),
             "empty_cpu": med([s.cpu for s in es]), "empty_faults": med([s.minflt for s in es])}
    stats = sh(floor, env={**env, "LD_DEBUG": "statistics"}, check=False).stderr

    def num(label):
        found = re.findall(r"^\s*\d+:\s+" + re.escape(label) + r":\s+(\d+)", stats, re.M)
        return int(found[-1]) if found else 0
    facts["relocs"] = num("final number of relocations")
    facts["relocs_cached"] = num("final number of relocations from cache")
    facts["relative"] = num("number of relative relocations")
    facts["loader_cycles"] = num("total startup time in dynamic loader")
    ldd = sh("ldd", floor, check=False).stdout
    facts["libs"] = sum(1 for line in ldd.splitlines() if "=>" in line)
    lib = re.search(r"libvirt\.so\.0 => (\S+)", ldd)
    dyn = sh("readelf", "-d", lib.group(1), check=False).stdout if lib else ""
    facts["bind_now"] = "BIND_NOW" in dyn or "Flags: NOW" in dyn
    mhz = 0.0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":", 1)[1])
                break
    facts["loader_s"] = facts["loader_cycles"] / (mhz * 1e6) if mhz else float("nan")
    for key, prog in (("syscalls", floor), ("empty_syscalls", empty)):
        trace = os.path.join(WORK, "floor.strace")
        subprocess.run(["strace", "-f", "-qq", "-o", trace, prog], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(trace) as f:
            facts[key] = sum(1 for _ in f)
    return facts


def floor_section(rows, fl):
    by = {(r.group, r.name, r.setting): r for r in rows}
    out = ["## The floor: loading libvirt", "",
           f"A C program that only links libvirt and exits takes {fmt_ms(fl['wall'])} wall and "
           f"{fmt_ms(fl['cpu'])} CPU; an empty C program {fmt_ms(fl['empty_wall'])} wall and "
           f"{fmt_ms(fl['empty_cpu'])} CPU (spawning any process from the harness). "
           f"libvirt.so.0 is linked {'BIND_NOW' if fl['bind_now'] else 'lazily'} (readelf -d), and it brings "
           f"{fl['libs']} shared libraries: every symbol they import is resolved when the program loads, "
           "not at first call. `LD_DEBUG=statistics` counts "
           f"{fl['relocs'] + fl['relocs_cached']:,} symbol relocations ({fl['relocs_cached']:,} of them answered "
           f"from the loader's cache) and {fl['relative']:,} relative relocations; the loader times its own work at "
           f"{fl['loader_cycles']:,} cycles ({fmt_ms(fl['loader_s'])} at the CPU's nominal clock). The rest of the "
           f"floor is mapping those objects ({fl['syscalls']} system calls against {fl['empty_syscalls']} for the "
           f"empty program), faulting their pages in ({fl['faults']:.0f} minor page faults against "
           f"{fl['empty_faults']:.0f}) and running their initialisers.", ""]
    for setting in (IN_CLUSTER, NO_CLUSTER_VD):
        mon = by.get(("VirtualDomain", "monitor (running guest)", setting))
        if mon:
            cr, wr = m(mon, "rust", "cpu"), m(mon, "rust", "wall")
            out += [f"What ocf:rust pays above it, monitor of a running guest ({setting}): "
                    f"{fmt_ms(max(0.0, cr - fl['cpu']))} CPU and {fmt_ms(max(0.0, wr - fl['wall']))} wall "
                    "(loading the agent's plugin, libvirt's initialisation, one connection to libvirtd, "
                    "the monitor's calls, the state file).", ""]
            break
    md, va = by.get(("VirtualDomain", "meta-data", NO_CLUSTER_VD)), by.get(("VirtualDomain", "validate-all", NO_CLUSTER_VD))
    if md and va:
        out += ["Actions that no longer pay it: the `VirtualDomain` binary links no libvirt; it answers "
                "`meta-data`, `usage`, `reload-agent` and `validate-all` below `OCF_CHECK_LEVEL=10` itself, and "
                "loads `libvirt.so.0` and its plugin only for the other actions. Here meta-data takes "
                f"{fmt_ms(m(md, 'rust', 'wall'))} wall and {fmt_ms(m(md, 'rust', 'cpu'))} CPU "
                f"(the shell agent {fmt_ms(m(md, 'shell', 'wall'))}), validate-all "
                f"{fmt_ms(m(va, 'rust', 'wall'))} wall and {fmt_ms(m(va, 'rust', 'cpu'))} CPU "
                f"(the shell agent {fmt_ms(m(va, 'shell', 'wall'))}).", ""]
    return out


def write_results(rows, latencies, fl):
    info = versions()
    lines = ["# Benchmark: ocf:rust against the shell agents", "",
             f"Generated by `make bench` on {info['date']}: {info['machine']}, kernel {info['kernel']}, "
             f"guests under {info['accel']}; {info['packages']}; ocf-rs {info['ocf-rs']}.", "",
             f"Medians over {RUNS} runs ({SLOW_RUNS} for start/stop rows, {DEAF_RUNS} for the stop of a guest that "
             f"ignores ACPI, {MIG_RUNS} for migration rows), "
             "A/B alternated. "
             "CPU = user+sys of the agent and every process it waited for (crm_resource, virsh... included; "
             "not the daemons they talk to); execs = programs run "
             "(the agent included), with how many of them were crm_resource; RSS = peak resident set of "
             "the largest process (GNU time); execs and RSS come from one extra, untimed run (strace and "
             "GNU time). Before each stop the guest is booted anew, except the one that ignores ACPI: "
             "it is restored from a memory image saved once it had booted (virsh save and restore, about "
             "0.5 s instead of a 3 s boot under TCG), as its stop takes the same course either way.", "",
             f"Settings: `{NO_CLUSTER_VD}` is the agent run by hand with no cluster, the utilization "
             "switches off (the rows of earlier reports, measured the same way). "
             f"`{IN_CLUSTER}` is the agent as a cluster runs it: the parameters `pcs resource create "
             "... VirtualDomain config=... hypervisor=...` leaves (autoset_utilization_cpu, _hv_memory and "
             "_host_memory true), under the one-node cluster of scripts/cluster.sh (started and stopped by "
             "the bench), with the executor's OCF_RESOURCE_INSTANCE and OCF_RESKEY_crm_feature_set, and a "
             "(disabled) resource of that id in the CIB, so crm_resource succeeds; its monitor row is the "
             "routine monitor, after the first one following a start has published the utilization.", "",
             "| agent | action | setting | wall shell | wall rust | wall ratio | CPU shell | CPU rust | CPU ratio | execs shell | execs rust | RSS shell | RSS rust |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    chart = []

    def execs(r, who):
        n = r.execs.get(who, "?")
        return f"{n} ({r.crm[who]} crm_resource)" if r.crm.get(who) else f"{n}"
    for r in rows:
        ws, wr = med([s.wall for s in r.samples["shell"]]), med([s.wall for s in r.samples["rust"]])
        cs, cr = med([s.cpu for s in r.samples["shell"]]), med([s.cpu for s in r.samples["rust"]])
        rs, rr = r.rss.get("shell", 0), r.rss.get("rust", 0)
        wratio = ws / wr if wr > 0 else float("inf")
        cratio = cs / cr if cr > 0 else float("inf")
        lines.append(f"| {r.group} | {r.name} | `{r.setting}` | {fmt_ms(ws)} | {fmt_ms(wr)} | {wratio:.1f}x | "
                     f"{fmt_ms(cs)} | {fmt_ms(cr)} | {cratio:.1f}x | {execs(r, 'shell')} | {execs(r, 'rust')} | "
                     f"{rs / 1024:.1f} MiB | {rr / 1024:.1f} MiB |")
        tag = " [cluster]" if r.setting == IN_CLUSTER else ""
        chart.append((f"{r.group} {r.name}{tag}", wratio, cratio if cratio != float("inf") else 0))
    lines.append("")
    if not any(r.setting == IN_CLUSTER for r in rows):
        lines += ["The cluster rows are missing from this run: a cluster the bench did not start was running, "
                  "or scripts/cluster.sh start failed (see the bench's output).", ""]
    if CL_ROWS:
        lines += cluster_level.section(CL_ROWS, lambda x: f"{x:.2f} s")
        for r in sorted(CL_ROWS, key=lambda r: r["order"]):
            s, u = cluster_level.med(r["samples"]["rust"]), cluster_level.med(r["samples"]["shell"])
            if s > 0 and u > 0:
                chart.append((f"{r['chart']} [cluster-level]", u / s, 0))
    else:
        lines += ["The cluster-level times are missing from this run (BENCH_CL_RUNS=0, or their set-up "
                  "failed: see the warnings).", ""]
    if WARNINGS:
        lines += ["Warnings of this run:", ""] + [f"- {w}" for w in WARNINGS] + [""]
    lines += floor_section(rows, fl)
    ls, lr = med(latencies["shell"]), med(latencies["rust"])
    lines += targets(rows, lr, fl, fl["empty_wall"])
    lines += ["## Stop latency", "",
              "Time from the guest's power-off (libvirt's Stopped lifecycle event) to the agent's return, "
              "graceful stop:", "",
              f"- shell agent: median {fmt_ms(ls)} over {len(latencies['shell'])} stops (it polls once a second)",
              f"- ocf:rust: median {fmt_ms(lr)} over {len(latencies['rust'])} stops (it waits for the event)", "",
              "![ratios](ratios.png)", ""]
    os.makedirs(OUT, exist_ok=True)
    md = "\n".join(lines)
    with open(os.path.join(OUT, "RESULTS.md"), "w") as f:
        f.write(md)
    print(md)
    dat = os.path.join(WORK, "ratios.dat")
    with open(dat, "w") as f:
        for label, w, c in chart:
            f.write(f"\"{label}\" {w:.3f} {c:.3f}\n")
    if shutil.which("gnuplot"):
        script = f"""set terminal pngcairo size 1200,700 noenhanced
set output '{os.path.join(OUT, "ratios.png")}'
set title 'shell agent / ocf:rust (higher is better for ocf:rust)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set logscale y
set ylabel 'ratio (log scale)'
set xtics rotate by -35 scale 0
set rmargin 14
set key top right
plot '{dat}' using 2:xtic(1) title 'wall time', '' using 3 title 'CPU time'
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=False)
    else:
        print("bench: gnuplot missing, no chart", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
