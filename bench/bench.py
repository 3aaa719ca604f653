#!/usr/bin/env python3
"""make bench: ocf:rust agents against the shell agents of resource-agents, side by side.

Both agents run against the same libvirtd, the same guests and the same environment,
alternating A/B run by run so that machine drift cancels out. For each row: median wall
time, median CPU time (user+sys of the agent and every process it waited for), processes
spawned (execve calls under strace) and peak RSS. Writes bench/RESULTS.md and a chart of
the ratios (gnuplot), and prints the table.

Environment: BENCH_RUNS (fast rows, default 21), BENCH_SLOW_RUNS (start/stop rows,
default 5), BENCH_SCALE (guest counts for the scale rows, default "1 10 25"),
BENCH_MIG_RUNS (live migrations per agent between the two libvirt hosts of
scripts/libvirt-hosts.sh, default 6; 0 skips them), BENCH_OUT (output directory, default bench/).
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("BENCH_OUT", os.path.join(REPO, "bench"))
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
SLOW_RUNS = int(os.environ.get("BENCH_SLOW_RUNS", "5"))
SCALE = [int(n) for n in os.environ.get("BENCH_SCALE", "1 10 25").split()]
OCF = "/usr/lib/ocf/resource.d"
RUST = {"VirtualDomain": f"{OCF}/rust/VirtualDomain", "Dummy": f"{OCF}/rust/Dummy"}
SHELL = {"VirtualDomain": f"{OCF}/heartbeat/VirtualDomain", "Dummy": f"{OCF}/heartbeat/Dummy"}
URI = "qemu:///system"
HOSTS = os.path.join(REPO, "scripts/libvirt-hosts.sh")
HOSTS_DIR = os.environ.get("OCF_RS_HOSTS_DIR", "/run/ocf-rs-hosts")
MIG_RUNS = int(os.environ.get("BENCH_MIG_RUNS", "6"))
WORK = tempfile.mkdtemp(prefix="ocf-rs-bench.")
CONSOLE_DIR = "/var/log/ocf-rs-guests"


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


def virsh(*args, check=False):
    return sh("virsh", "-q", "-c", URI, *args, check=check)


class Sample:
    def __init__(self, wall, cpu, rc):
        self.wall, self.cpu, self.rc = wall, cpu, rc


def run_once(cmd, env):
    """One invocation: wall time, user+sys of the whole waited-for tree, exit code."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall, ru.ru_utime + ru.ru_stime, p.returncode)


def count_execs(cmd, env, prefix=()):
    """Programs executed by one invocation (the agent itself included), under strace
    (itself run after `prefix`, so that nsenter is not counted)."""
    trace = os.path.join(WORK, "strace.out")
    subprocess.run(list(prefix) + ["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace] + cmd,
                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(trace) as f:
        return sum(1 for line in f if "execve(" in line and "= 0" in line)


def peak_rss(cmd, env, prefix=()):
    """Peak resident set (KiB) of the largest process of one invocation, by GNU time's %M.
    (The rusage of the timed runs cannot give it: a child forked from this Python process
    carries Python's resident set until it execs, and the kernel counts that high-water mark.
    GNU time forks from a ~2 MiB process instead.)"""
    out = os.path.join(WORK, "rss.out")
    subprocess.run(list(prefix) + ["/usr/bin/time", "-f", "%M", "-o", out] + cmd,
                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        with open(out) as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0


def base_env(extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "OCF_ROOT": "/usr/lib/ocf", "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1",
           "HA_RSCTMP": os.path.join(WORK, "rsctmp"), "HA_VARRUN": os.path.join(WORK, "varrun")}
    env.update(extra)
    return env


class Row:
    def __init__(self, group, name, action, env, runs, setup=None, teardown=None, agent="VirtualDomain"):
        self.group, self.name, self.action, self.env = group, name, action, env
        self.runs, self.setup, self.teardown, self.agent = runs, setup, teardown, agent
        self.samples = {"shell": [], "rust": []}
        self.execs = {}
        self.rss = {}


def in_host(host):
    """The command prefix that runs a program inside a libvirt host of scripts/libvirt-hosts.sh
    (its network, mount and UTS namespaces). nsenter execs the program: no extra process."""
    with open(f"{HOSTS_DIR}/{host}/keeper.pid") as f:
        keeper = f.read().strip()
    return ["nsenter", "-t", keeper, "-n", "-m", "-u", "--"]


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
        row.execs[who] = count_execs([agent, row.action], envs)
        if row.teardown:
            row.teardown(who, None)
        if row.setup:
            row.setup()
        row.rss[who] = peak_rss([agent, row.action], envs)
        if row.teardown:
            row.teardown(who, None)
    bad = {w: [s.rc for s in row.samples[w] if s.rc not in expected_rc(row)] for w in row.samples}
    if any(bad.values()):
        print(f"warning: {row.name}: unexpected exit codes {bad}", file=sys.stderr)


def expected_rc(row):
    return {7} if "stopped" in row.name else {0}


# ---------------------------------------------------------------- guests

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


def boot(name, xml):
    virsh("destroy", name)
    try:
        os.remove(console(name))
    except FileNotFoundError:
        pass
    virsh("create", xml, check=True)
    wait_ready(name)


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
    for tool in ("strace", "virsh"):
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

    def destroy_after(who, s):
        if s is not None and virsh("domstate", vm).stdout.strip() != "running":
            print(f"warning: start by {who} left {vm} {virsh('domstate', vm).stdout.strip()}", file=sys.stderr)
        virsh("destroy", vm)

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
            print(f"warning: stop by {who} left {vm} running", file=sys.stderr)
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

    def deaf_setup():
        boot(deaf, deaf_xml)

    def deaf_after(who, s):
        if not gone(deaf):
            print(f"warning: stop by {who} left {deaf} running", file=sys.stderr)
            virsh("destroy", deaf)

    stop_deaf = Row("VirtualDomain", "stop (guest ignores ACPI, 12 s timeout)", "stop", vd_deaf,
                    max(2, SLOW_RUNS // 2), setup=deaf_setup, teardown=deaf_after)
    run_row(stop_deaf)
    rows.append(stop_deaf)

    # Scale: the monitor of one guest while N guests run on the host.
    scale_rows = []
    running = []
    boot(vm, vm_xml)
    running.append(vm)
    for n in SCALE:
        while len(running) < n:
            name = f"bench-scale-{len(running)}"
            xml = make_domain(name)
            virsh("destroy", name)
            virsh("create", xml, check=True)
            running.append(name)
        for name in running:
            wait_ready(name, timeout=300)
        time.sleep(3)  # let the guests settle to idle
        r = Row("VirtualDomain", f"monitor with {n} guest(s) running", "monitor", {**vd, **rec}, RUNS)
        run_row(r)
        scale_rows.append(r)
    for name in running:
        virsh("destroy", name)
    rows.extend(scale_rows)

    if MIG_RUNS > 0:
        rows.extend(migration_rows())

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

    floor_samples = [run_once([floor], base_env({})) for _ in range(RUNS)]
    empty_samples = [run_once([empty], base_env({})) for _ in range(RUNS)]
    events.close()
    write_results(rows, latencies, floor_samples, empty_samples)


def migration_rows():
    """migrate_to on the source and migrate_from on the target, between the two libvirt hosts of
    scripts/libvirt-hosts.sh (each agent in the host's namespaces, as Pacemaker runs it there,
    with migration_transport=tcp). One guest goes back and forth; each agent migrates it in
    turn (A/B alternated), then stops the source side as Pacemaker would."""
    sh(HOSTS, "up")
    try:
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
        to_row = Row("VirtualDomain", "migrate_to (live, to the other host)", "migrate_to", {}, MIG_RUNS)
        from_row = Row("VirtualDomain", "migrate_from (on the target)", "migrate_from", {}, MIG_RUNS)
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
                if measure == "execs":
                    row.execs[who] = count_execs([agent, row.action], env, in_host(host))
                elif measure == "rss":
                    row.rss[who] = peak_rss([agent, row.action], env, in_host(host))
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
        for measure in ("execs", "rss"):
            for who in ("shell", "rust"):
                one(who, measure)
        with open(console(name), errors="replace") as f:
            boots = f.read().count("GUEST-BOOT")
        if boots != 1:
            print(f"warning: the migrated guest booted {boots} times (a migration fell back to a restart?)",
                  file=sys.stderr)
        for r in (to_row, from_row):
            bad = {w: [s.rc for s in r.samples[w] if s.rc != 0] for w in r.samples}
            if any(bad.values()):
                print(f"warning: {r.name}: unexpected exit codes {bad}", file=sys.stderr)
        return [to_row, from_row]
    finally:
        sh(HOSTS, "down", check=False)


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


def targets(rows, stop_latency, floor_wall, floor_cpu, empty_wall):
    """The issue's performance targets against this run: reported, never asserted."""
    by_name = {(r.group, r.name): r for r in rows}

    def m(row, who, what):
        return med([getattr(s, what) for s in row.samples[who]])

    out = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def line(target, measured, met):
        out.append(f"| {target} | {measured} | {'yes' if met else 'no'} |")

    mon = by_name.get(("VirtualDomain", "monitor (running guest)"))
    if mon:
        cs, cr = m(mon, "shell", "cpu"), m(mon, "rust", "cpu")
        ws, wr = m(mon, "shell", "wall"), m(mon, "rust", "wall")
        line("monitor of a running guest: >= 10x less CPU", f"{cs / cr:.1f}x", cs / cr >= 10)
        line("monitor of a running guest: >= 5x less wall time", f"{ws / wr:.1f}x", ws / wr >= 5)
        line("monitor of a running guest: no fork", f"{mon.execs.get('rust')} program run (the agent)",
             mon.execs.get("rust") == 1)
    line("stop latency after the power-off < 50 ms", fmt_ms(stop_latency), stop_latency < 0.05)
    scale = [r for r in rows if r.name.startswith("monitor with ")]
    if len(scale) >= 2:
        first, last = m(scale[0], "rust", "cpu"), m(scale[-1], "rust", "cpu")
        line(f"no cost growth from {scale[0].name[13:]} to {scale[-1].name[13:]}",
             f"CPU {fmt_ms(first)} -> {fmt_ms(last)} ({(last / first - 1) * 100:+.0f}%)", last <= first * 1.1)
    dmd = by_name.get(("Dummy", "meta-data"))
    if dmd:
        w = m(dmd, "rust", "wall")
        line("Dummy meta-data < 1 ms", f"{fmt_ms(w)} wall; an empty C program: {fmt_ms(empty_wall)}", w < 0.001)
    out.append("")
    if mon:
        out += [f"The floor is loading libvirt: {fmt_ms(floor_cpu)} CPU and {fmt_ms(floor_wall)} wall for a "
                "program that does nothing else. ocf:rust's monitor of a running guest costs "
                f"{fmt_ms(cr - floor_cpu)} CPU above it (libvirt's initialisation, one connection, the monitor's "
                "calls); the shell agent's "
                f"{fmt_ms(cs)} allow at most {cs / floor_cpu:.1f}x less CPU and {ws / floor_wall:.1f}x less wall "
                "time for any agent that loads libvirt, so the 10x CPU target is below the floor.", ""]
    return out


def write_results(rows, latencies, floor_samples, empty_samples):
    info = versions()
    lines = ["# Benchmark: ocf:rust against the shell agents", "",
             f"Generated by `make bench` on {info['date']}: {info['machine']}, kernel {info['kernel']}, "
             f"guests under {info['accel']}; {info['packages']}; ocf-rs {info['ocf-rs']}.", "",
             f"Medians over {RUNS} runs ({SLOW_RUNS} for start/stop rows, {MIG_RUNS} for migration rows), "
             "A/B alternated. "
             "CPU = user+sys of the agent and every process it waited for; execs = programs run "
             "(the agent included); RSS = peak resident set of the largest process (GNU time, "
             "one extra run).", "",
             "| agent | action | wall shell | wall rust | wall ratio | CPU shell | CPU rust | CPU ratio | execs shell | execs rust | RSS shell | RSS rust |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    chart = []
    for r in rows:
        ws, wr = med([s.wall for s in r.samples["shell"]]), med([s.wall for s in r.samples["rust"]])
        cs, cr = med([s.cpu for s in r.samples["shell"]]), med([s.cpu for s in r.samples["rust"]])
        rs, rr = r.rss.get("shell", 0), r.rss.get("rust", 0)
        wratio = ws / wr if wr > 0 else float("inf")
        cratio = cs / cr if cr > 0 else float("inf")
        lines.append(f"| {r.group} | {r.name} | {fmt_ms(ws)} | {fmt_ms(wr)} | {wratio:.1f}x | {fmt_ms(cs)} | "
                     f"{fmt_ms(cr)} | {cratio:.1f}x | {r.execs.get('shell', '?')} | {r.execs.get('rust', '?')} | "
                     f"{rs / 1024:.1f} MiB | {rr / 1024:.1f} MiB |")
        chart.append((f"{r.group} {r.name}", wratio, cratio if cratio != float("inf") else 0))
    fw = med([s.wall for s in floor_samples])
    fc = med([s.cpu for s in floor_samples])
    ew = med([s.wall for s in empty_samples])
    lines += ["", f"Floor: a C program that only links libvirt and exits takes {fmt_ms(fw)} wall and "
              f"{fmt_ms(fc)} CPU (loading libvirt.so and its ~55 libraries); every VirtualDomain row of "
              f"ocf:rust pays it once. An empty C program takes {fmt_ms(ew)} wall here (spawning any "
              "process from the harness).", ""]
    ls, lr = med(latencies["shell"]), med(latencies["rust"])
    lines += targets(rows, lr, fw, fc, ew)
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
