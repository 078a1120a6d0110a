// The claims ledger of a paper: protocols/<paper>/claims.yaml lists every headline claim of the
// paper with its status and evidence. Certification says that an implementation equals a reference;
// the ledger says which of the paper's own results hold here, which do not, and which cannot be
// tested here (and what was tested in their place). The loader is as strict as the protocol loader:
// unknown keys, a missing status, evidence or reason are errors naming the file and the claim.

import Foundation
import Yams

/// The status of one claim.
public enum ClaimStatus: String, Codable, Sendable, CaseIterable {
    /// A committed result file supports the claim.
    case reproduced
    /// A committed result file contradicts the claim.
    case refuted
    /// The measurement neither supports nor contradicts it (confounded, too noisy, or not run yet).
    case inconclusive
    /// It needs data, weights or compute that this project does not have.
    case untestable = "untestable here"
}

/// Where a claim's figure comes from: the command that reproduces it and the committed files it reads.
public struct ClaimEvidence: Codable, Sendable {
    public var command: String
    /// Paths relative to the package root.
    public var files: [String]
}

public struct Claim: Codable, Sendable {
    public var id: String
    /// The claim, quoted or paraphrased.
    public var claim: String
    /// Where the paper makes it (table, section, abstract).
    public var location: String
    public var status: ClaimStatus
    public var evidence: ClaimEvidence?
    /// Why it is untestable here (or why it is inconclusive when there is no evidence).
    public var reason: String?
    /// What was tested in its place.
    public var tested_instead: String?
    public var notes: String?
}

/// A parsed protocols/<paper>/claims.yaml.
public struct ClaimsLedger: Sendable {
    public static let fileName = "claims.yaml"

    /// The paper, as the checklist names it.
    public var paper: String
    /// The protocol id prefix of the paper's protocols (e.g. "iadg").
    public var protocols: String
    /// Where the claims were read (paper, notes).
    public var sources: String?
    public var claims: [Claim]
    /// The YAML file it came from (as given to `load`).
    public var file: String

    static let allowedKeys: Set<String> = ["paper", "protocols", "sources", "claims"]
    static let requiredKeys = ["paper", "protocols", "claims"]
    static let allowedClaimKeys: Set<String> = ["id", "claim", "location", "status", "evidence", "reason", "tested_instead", "notes"]
    static let requiredClaimKeys = ["id", "claim", "location", "status"]
    static let allowedEvidenceKeys: Set<String> = ["command", "files"]

    /// Claims with a given status.
    public func count(_ s: ClaimStatus) -> Int { claims.filter { $0.status == s }.count }

    /// Every file cited as evidence, in order of first citation.
    public var citedFiles: [String] {
        var seen = Set<String>(), out: [String] = []
        for f in claims.flatMap({ $0.evidence?.files ?? [] }) where seen.insert(f).inserted { out.append(f) }
        return out
    }

    /// Parses and validates one ledger.
    public static func load(_ path: String) throws -> ClaimsLedger {
        let dict = try strictMapping(path, what: "claims ledger", allowed: allowedKeys, required: requiredKeys)
        func nonEmpty(_ v: Any?) -> String? {
            guard let s = v as? String, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
            return s
        }
        guard let paper = nonEmpty(dict["paper"]) else { throw ProtocolError(file: path, "'paper' must be a non-empty string") }
        guard let prefix = nonEmpty(dict["protocols"]) else { throw ProtocolError(file: path, "'protocols' must be a protocol id prefix") }
        if dict["sources"] != nil && nonEmpty(dict["sources"]) == nil { throw ProtocolError(file: path, "'sources' must be a non-empty string") }
        guard let raw = dict["claims"] as? [Any], !raw.isEmpty else {
            throw ProtocolError(file: path, "'claims' must be a non-empty list of mappings")
        }
        var claims: [Claim] = []
        for (i, item) in raw.enumerated() {
            guard let c = item as? [String: Any] else { throw ProtocolError(file: path, "claim \(i) is not a mapping") }
            let name = nonEmpty(c["id"]).map { "claim '\($0)'" } ?? "claim \(i)"
            func fail(_ message: String) -> ProtocolError { ProtocolError(file: path, "\(name): \(message)") }
            let unknown = Set(c.keys).subtracting(allowedClaimKeys)
            if !unknown.isEmpty { throw fail("unknown key(s) \(unknown.sorted()); allowed: \(allowedClaimKeys.sorted())") }
            for k in requiredClaimKeys where c[k] == nil { throw fail("missing required key '\(k)'") }
            for k in ["id", "claim", "location", "reason", "tested_instead", "notes"] where c[k] != nil && nonEmpty(c[k]) == nil {
                throw fail("'\(k)' must be a non-empty string")
            }
            let id = nonEmpty(c["id"])!
            guard id.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }) else {
                throw fail("id must be lowercase letters, digits and underscores")
            }
            if claims.contains(where: { $0.id == id }) { throw fail("duplicate id") }
            guard let st = c["status"] as? String, let status = ClaimStatus(rawValue: st) else {
                throw fail("'status' must be one of \(ClaimStatus.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")), got '\(c["status"].map { "\($0)" } ?? "")'")
            }
            var evidence: ClaimEvidence?
            if let e = c["evidence"] {
                guard let ed = e as? [String: Any] else { throw fail("'evidence' must be a mapping with 'command' and 'files'") }
                let unknown = Set(ed.keys).subtracting(allowedEvidenceKeys)
                if !unknown.isEmpty { throw fail("evidence: unknown key(s) \(unknown.sorted()); allowed: \(allowedEvidenceKeys.sorted())") }
                guard let command = nonEmpty(ed["command"]) else { throw fail("evidence needs a 'command' (what reproduces the figure)") }
                guard let files = ed["files"] as? [Any], !files.isEmpty else {
                    throw fail("evidence needs 'files': the committed result files the command reads or writes")
                }
                var paths: [String] = []
                for f in files {
                    guard let s = nonEmpty(f), !s.hasPrefix("/"), !s.split(separator: "/").contains("..") else {
                        throw fail("evidence file '\(f)' must be a path relative to the package root")
                    }
                    paths.append(s)
                }
                evidence = ClaimEvidence(command: command, files: paths)
            }
            let reason = nonEmpty(c["reason"]), instead = nonEmpty(c["tested_instead"])
            switch status {
            case .reproduced, .refuted:
                if evidence == nil { throw fail("status '\(status.rawValue)' needs 'evidence' (command and committed result files)") }
            case .inconclusive:
                if evidence == nil && reason == nil { throw fail("status 'inconclusive' needs 'evidence' or a 'reason'") }
            case .untestable:
                if reason == nil { throw fail("status 'untestable here' needs a 'reason'") }
                if instead == nil { throw fail("status 'untestable here' needs 'tested_instead' (what was tested in its place)") }
            }
            claims.append(Claim(id: id, claim: nonEmpty(c["claim"])!, location: nonEmpty(c["location"])!, status: status,
                                evidence: evidence, reason: reason, tested_instead: instead, notes: nonEmpty(c["notes"])))
        }
        return ClaimsLedger(paper: paper, protocols: prefix, sources: nonEmpty(dict["sources"]), claims: claims, file: path)
    }

    /// Every protocols/*/claims.yaml under the package root, sorted by path.
    public static func loadAll(root: String) throws -> [ClaimsLedger] {
        let dir = (root as NSString).appendingPathComponent("protocols")
        guard let en = FileManager.default.enumerator(atPath: dir) else { throw ProtocolError(file: dir, "no protocols folder") }
        var out: [ClaimsLedger] = []
        for case let rel as String in en.allObjects where (rel as NSString).lastPathComponent == fileName {
            out.append(try load((dir as NSString).appendingPathComponent(rel)))
        }
        return out.sorted { $0.file < $1.file }
    }

    /// The ledger's path relative to `root` (for tables and messages).
    public func relativePath(root: String) -> String {
        let r = root.hasSuffix("/") ? root : root + "/"
        return file.hasPrefix(r) ? String(file.dropFirst(r.count)) : file
    }

    /// Cited evidence files that do not exist under `root`: "claims.yaml: claim 'x' cites 'f', which does not exist".
    public func missingFiles(root: String) -> [String] {
        var out: [String] = []
        for c in claims {
            for f in c.evidence?.files ?? [] where !FileManager.default.fileExists(atPath: (root as NSString).appendingPathComponent(f)) {
                out.append("\(relativePath(root: root)): claim '\(c.id)' cites '\(f)', which does not exist")
            }
        }
        return out
    }
}
