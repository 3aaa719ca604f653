#!/usr/bin/env python3
"""make bench: ocf:rust agents against the shell agents of resource-agents, side by side.

Both agents run against the same libvirtd, the same guests and the same environment,
alternating A/B run by run so that machine drift cancels out. For each row: median wall
time, median CPU time (user+sys of the agent and every process it waited for), processes
spawned (execve calls under strace) and peak RSS. Writes bench/RESULTS.md and a chart of
the ratios (gnuplot), and prints the table.

Environment: BENCH_RUNS (fast rows, default 21), BENCH_SLOW_RUNS (start/stop rows,
default 5), BENCH_SCALE (guest counts for the scale rows, default "1 10 25"),
BENCH_OUT (output directory, default bench/).
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
WORK = tempfile.mkdtemp(prefix="ocf-rs-bench.")
CONSOLE_DIR = "/var/log/ocf-rs-guests"


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, text=True, capture_output=True, **kw)


def virsh(*args, check=False):
    return sh("virsh", "-q", "-c", URI, *args, check=check)


class Sample:
    def __init__(self, wall, cpu, rss, rc):
        self.wall, self.cpu, self.rss, self.rc = wall, cpu, rss, rc


def run_once(cmd, env):
    """One invocation: wall time, user+sys of the whole waited-for tree, peak RSS (KiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, p.returncode)


def count_execs(cmd, env):
    """Programs executed by one invocation (the agent itself included), under strace."""
    trace = os.path.join(WORK, "strace.out")
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace] + cmd,
                   env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with open(trace) as f:
        return sum(1 for line in f if "execve(" in line and "= 0" in line)


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
    events.close()
    write_results(rows, latencies, floor_samples)


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


def write_results(rows, latencies, floor_samples):
    info = versions()
    lines = ["# Benchmark: ocf:rust against the shell agents", "",
             f"Generated by `make bench` on {info['date']}: {info['machine']}, kernel {info['kernel']}, "
             f"guests under {info['accel']}; {info['packages']}; ocf-rs {info['ocf-rs']}.", "",
             f"Medians over {RUNS} runs ({SLOW_RUNS} for start/stop rows), A/B alternated. "
             "CPU = user+sys of the agent and every process it waited for; execs = programs run "
             "(the agent included); RSS = peak resident set of the largest process.", "",
             "| agent | action | wall shell | wall rust | wall ratio | CPU shell | CPU rust | CPU ratio | execs shell | execs rust | RSS shell | RSS rust |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    chart = []
    for r in rows:
        ws, wr = med([s.wall for s in r.samples["shell"]]), med([s.wall for s in r.samples["rust"]])
        cs, cr = med([s.cpu for s in r.samples["shell"]]), med([s.cpu for s in r.samples["rust"]])
        rs, rr = max(s.rss for s in r.samples["shell"]), max(s.rss for s in r.samples["rust"])
        wratio = ws / wr if wr > 0 else float("inf")
        cratio = cs / cr if cr > 0 else float("inf")
        lines.append(f"| {r.group} | {r.name} | {fmt_ms(ws)} | {fmt_ms(wr)} | {wratio:.1f}x | {fmt_ms(cs)} | "
                     f"{fmt_ms(cr)} | {cratio:.1f}x | {r.execs.get('shell', '?')} | {r.execs.get('rust', '?')} | "
                     f"{rs // 1024} MiB | {rr // 1024} MiB |")
        chart.append((f"{r.group} {r.name}", wratio, cratio if cratio != float("inf") else 0))
    fw = med([s.wall for s in floor_samples])
    fc = med([s.cpu for s in floor_samples])
    lines += ["", f"Floor: a C program that only links libvirt and exits takes {fmt_ms(fw)} wall and "
              f"{fmt_ms(fc)} CPU (loading libvirt.so and its ~55 libraries); every VirtualDomain row of "
              "ocf:rust pays it once.", ""]
    ls, lr = med(latencies["shell"]), med(latencies["rust"])
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
