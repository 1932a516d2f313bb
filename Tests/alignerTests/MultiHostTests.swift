import Foundation
import XCTest

/// Two hosts made with network namespaces (`ip netns`) joined by a veth pair, 10.77.0.1 and 10.77.0.2, each with its own
/// network stack; the file system is shared, as a cluster's is over NFS. mpirun starts in the first and reaches the
/// second through an rsh agent that enters its namespace (Open MPI's `plm_rsh_agent`, in place of ssh), so each
/// host's launcher runs inside its namespace and the ranks talk over TCP across the veth link (shared memory off).
final class NamespaceHosts {
    let names: [String]
    let addresses = ["10.77.0.1", "10.77.0.2"]
    let agent: URL
    let hostfile: URL
    static let interface = "akv"

    /// Needs root, `ip` and Open MPI's mpirun; throws XCTSkip otherwise.
    init(folder: URL) throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip"),
              DataParallelTestBase.mpirun != nil else {
            throw XCTSkip("needs root, ip(8) and Open MPI to make two hosts with network namespaces")
        }
        let tag = "\(getpid() % 100_000)"
        names = ["ak\(tag)a", "ak\(tag)b"]
        agent = folder.appendingPathComponent("netns-agent")
        hostfile = folder.appendingPathComponent("netns-hostfile")
        try? remove()
        let (a, b) = ("ak\(tag)x", "ak\(tag)y")
        for args in [["netns", "add", names[0]], ["netns", "add", names[1]], ["link", "add", a, "type", "veth", "peer", "name", b],
                     ["link", "set", a, "netns", names[0]], ["link", "set", b, "netns", names[1]],
                     ["-n", names[0], "link", "set", a, "name", Self.interface], ["-n", names[1], "link", "set", b, "name", Self.interface],
                     ["-n", names[0], "addr", "add", "\(addresses[0])/24", "dev", Self.interface],
                     ["-n", names[1], "addr", "add", "\(addresses[1])/24", "dev", Self.interface]] {
            try Self.ip(args)
        }
        for n in names { try Self.ip(["-n", n, "link", "set", Self.interface, "up"]); try Self.ip(["-n", n, "link", "set", "lo", "up"]) }
        // "AGENT HOST COMMAND..." runs COMMAND in HOST's namespace, with ALIGNERKIT_HOST naming the host in messages.
        let script = """
            #!/bin/sh
            host="$1"; shift
            case "$host" in
              \(addresses[0])) ns=\(names[0]) ;;
              \(addresses[1])) ns=\(names[1]) ;;
              *) echo "netns-agent: unknown host $host" >&2; exit 1 ;;
            esac
            exec ip netns exec "$ns" env ALIGNERKIT_HOST="$host" sh -c "$*"

            """
        try script.write(to: agent, atomically: true, encoding: .utf8)
        chmod(agent.path, 0o755)
        try addresses.map { "\($0) slots=1\n" }.joined().write(to: hostfile, atomically: true, encoding: .utf8)
    }

    @discardableResult
    static func ip(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
        p.arguments = args
        let (status, text) = try CLITestCase.capture(p)
        guard status == 0 else { throw NSError(domain: "ip", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "ip \(args.joined(separator: " ")): \(text)"]) }
        return text
    }

    /// The processes inside host `index`'s namespace.
    func processes(_ index: Int) -> [pid_t] {
        ((try? Self.ip(["netns", "pids", names[index]])) ?? "").split(separator: "\n").compactMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Ends every process left in the namespaces (launchers waiting for a host they cannot reach) and removes them.
    func remove() throws {
        for i in 0..<names.count { for pid in processes(i) { kill(pid, SIGKILL) } }
        usleep(200_000)
        for n in names { _ = try? Self.ip(["netns", "del", n]) }
    }

    /// Bytes host `index` has sent over the link so far.
    func bytesSent(_ index: Int) throws -> Int {
        let json = try Self.ip(["-n", names[index], "-s", "-j", "link", "show", Self.interface])
        let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        let stats = root?.first?["stats64"] as? [String: Any]
        return ((stats?["tx"] as? [String: Any])?["bytes"] as? Int) ?? 0
    }

    func setLink(_ index: Int, up: Bool) throws { try Self.ip(["-n", names[index], "link", "set", Self.interface, up ? "up" : "down"]) }

    /// mpirun in host 0's namespace, one rank on each host, over TCP only (`btl tcp,self`: no shared memory).
    func mpirun(_ executable: URL, _ args: [String], root: URL, environment: [String: String] = [:]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", names[0], DataParallelTestBase.mpirun!, "--hostfile", hostfile.path, "-np", "2", "--bind-to", "none",
                       "--mca", "plm_rsh_agent", agent.path, "--mca", "btl", "tcp,self", "--mca", "pml", "ob1",
                       "--mca", "btl_tcp_if_include", Self.interface, "--mca", "oob_tcp_if_include", Self.interface,
                       executable.path] + args
        p.environment = ProcessInfo.processInfo.environment.merging(
            ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "ALIGNERKIT_HOST": addresses[0]]
                .merging(environment) { _, new in new }) { _, new in new }
        p.currentDirectoryURL = root
        return p
    }
}

/// Data-parallel training across a real network hop (issue 27): ranks on two hosts compute one process's losses; a cut
/// link and a killed rank end every rank within a stated time, with a message naming the rank and host, and the run
/// resumes exactly from its newest checkpoint.
final class MultiHostTests: DataParallelTestBase {
    var hosts: NamespaceHosts!

    override func setUpWithError() throws {
        try super.setUpWithError()
        hosts = try NamespaceHosts(folder: dir)
    }
    override func tearDownWithError() throws {
        try? hosts?.remove()
        try super.tearDownWithError()
    }

    /// Runs mpirun over the two hosts to its end; its output.
    @discardableResult
    func runOnHosts(_ args: [String], expect status: Int32 = 0, environment: [String: String] = [:],
                    file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (ended, text) = try Self.capture(hosts.mpirun(executable, args, root: Self.root, environment: environment))
        XCTAssertEqual(ended, status, "mpirun on two hosts: aligner \(args.joined(separator: " ")):\n\(text)", file: file, line: line)
        return text
    }

    func testRanksOnTwoHostsTrainAsOneProcess() throws {
        try run(["train"] + recipeArguments(name: "one"))
        let sentBefore = try (0..<2).map { try hosts.bytesSent($0) }
        let clock = ContinuousClock(), start = clock.now
        let out = try runOnHosts(["train"] + recipeArguments(name: "hosts"))
        let wall = clock.now - start
        XCTAssertTrue(out.contains("data-parallel: 2 processes (MPI) on 2 hosts (rank 0: 10.77.0.1, rank 1: 10.77.0.2)"), out)
        let one = try metrics("one"), two = try metrics("hosts")
        XCTAssertEqual(one.train.count, 20)
        assertClose(one.train, two.train, relative: [1e-5, 1e-4])
        assertClose(one.eval.mapValues { [$0] }, two.eval.mapValues { [$0] }, relative: [1e-5])
        // What crossed the link: each host sends the all-reduced payload (a ring of two: 2(N-1)/N = 1 times it) plus
        // the few collectives of checks, evaluation and broadcasts.
        let sent = try (0..<2).map { try hosts.bytesSent($0) - sentBefore[$0] }
        let line = try XCTUnwrap(out.split(separator: "\n").first { $0.contains("each rank all-reduced") })
        let payload = try XCTUnwrap(Double(line.split(separator: " ")[4])) * 1e6  // "data-parallel: each rank all-reduced X MB ..."
        print("two hosts over veth: \(line); sent over the link: \(sent.map { String(format: "%.2f MB", Double($0) / 1e6) }), "
              + String(format: "%.3f MB per step per host; wall %.1f s", Double(sent[0]) / 20 / 1e6, Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18))
        for s in sent {
            XCTAssertGreaterThanOrEqual(Double(s), payload, "less than the all-reduced payload crossed the link: the ranks did not talk over it")
            XCTAssertLessThan(Double(s), payload * 1.5 + 2e6)
        }
    }

    /// Starts a long two-host run and returns it when its first stage-2 checkpoint exists.
    func startLongRun(_ name: String, timeout: Int) throws -> (Process, URL, [String]) {
        // One thread per rank wherever it runs, so that a run resumed on other hosts (or with other launchers) sums the same
        // way: the numbers do not depend on where the ranks are.
        let args = ["train"] + recipeArguments(name: name, steps: 400, extra: ["--set", "train.checkpoint_every=40", "--set", "train.log_every=40",
                                                                               "--set", "train.threads=1"])
        let p = hosts.mpirun(executable, args, root: Self.root, environment: ["ALIGNERKIT_COLLECTIVE_TIMEOUT": "\(timeout)"])
        let log = dir.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let checkpoints = dir.appendingPathComponent("\(name)/checkpoints")
        let deadline = Date().addingTimeInterval(120)
        func hasCheckpoint() -> Bool {
            ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []).contains { $0.hasPrefix("ckpt-s2-") }
        }
        while !hasCheckpoint() && p.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(hasCheckpoint(), "no stage-2 checkpoint appeared")
        return (p, log, args)
    }

    /// The aligner ranks still alive on either host.
    func rankProcesses() -> [pid_t] {
        (0..<2).flatMap { hosts.processes($0) }.filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains(executable.path)
                && !((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains("mpirun")
        }
    }

    /// The uninterrupted run of the same recipe: two ranks on one host (the same sums in the same order).
    func uninterrupted(_ args: [String], name: String, as other: String) throws -> (train: [String: [Double]], eval: [String: Double]) {
        try runMPI(ranks: 2, args.map { $0 == "name=\(other)" ? "name=\(name)" : $0 })
        return try metrics(name)
    }

    func testACutLinkEndsEveryRankAndTheRunResumesExactly() throws {
        let timeout = 5
        let (p, log, args) = try startLongRun("cut", timeout: timeout)
        defer { if p.isRunning { p.terminate() } }
        let cutAt = Date()
        try hosts.setLink(1, up: false)
        // Every rank ends within the collective timeout (plus the watchdog's poll and the exit).
        while !rankProcesses().isEmpty && Date().timeIntervalSince(cutAt) < Double(timeout + 30) { usleep(100_000) }
        let ended = Date().timeIntervalSince(cutAt)
        XCTAssertTrue(rankProcesses().isEmpty, "ranks still running \(Int(ended)) s after the link was cut")
        XCTAssertLessThan(ended, Double(timeout) + 5, "the ranks took \(ended) s to end")
        print(String(format: "link cut: every rank ended %.1f s after the cut (ALIGNERKIT_COLLECTIVE_TIMEOUT=%d)", ended, timeout))
        // mpirun cannot reach the cut host's daemon to end the job: the launchers are ended here, as an operator would.
        try hosts.remove()
        hosts = try NamespaceHosts(folder: dir)
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(text.contains("rank 0 of 2 on host 10.77.0.1: lost the other ranks (rank 1 on host 10.77.0.2): one of them stopped, or the network link to its host failed"), text)
        XCTAssertTrue(text.contains("has waited \(timeout) s for the other ranks"), text)
        // The newest checkpoint is complete: the run resumes from it on one host, to the uninterrupted run's numbers.
        let resumed = try runMPI(ranks: 2, args + ["--resume"])
        XCTAssertTrue(resumed.contains("resuming from"), resumed)
        let whole = try uninterrupted(args, name: "cut-whole", as: "cut"), parts = try metrics("cut")
        XCTAssertEqual(whole.train.count, 400)
        XCTAssertEqual(whole.train, parts.train)
        XCTAssertEqual(whole.eval, parts.eval)
    }

    func testAKilledRankOnTheOtherHostEndsTheJobAndTheRunResumesExactly() throws {
        let (p, log, args) = try startLongRun("killed", timeout: 60)
        defer { if p.isRunning { p.terminate() } }
        let victim = try XCTUnwrap(hosts.processes(1).first { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").hasPrefix(executable.path)
        }, "rank 1's process not found on host 2")
        let killedAt = Date()
        kill(victim, SIGKILL)
        while p.isRunning && Date().timeIntervalSince(killedAt) < 60 { usleep(50_000) }
        XCTAssertFalse(p.isRunning, "mpirun did not end within a minute of rank 1's death")
        p.waitUntilExit()
        let ended = Date().timeIntervalSince(killedAt)
        print(String(format: "killed rank 1 on host 2: the job ended %.1f s later", ended))
        XCTAssertTrue(rankProcesses().isEmpty)
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertNotEqual(p.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("rank 1") && text.contains("10.77.0.2") && text.contains("signal 9"), text)  // mpirun's line
        XCTAssertTrue(text.contains("rank 0 of 2: ended by mpirun (SIGTERM)"), text)
        // Resumed on both hosts: the uninterrupted run's numbers.
        let resumed = try runOnHosts(args + ["--resume"])
        XCTAssertTrue(resumed.contains("resuming from"), resumed)
        let whole = try uninterrupted(args, name: "killed-whole", as: "killed"), parts = try metrics("killed")
        XCTAssertEqual(whole.train, parts.train)
        XCTAssertEqual(whole.eval, parts.eval)
    }
}
