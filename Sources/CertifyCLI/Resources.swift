// `--max-memory`: the memory budget of the commands that allocate from user data (eval, audit,
// blockmnist export, lava classify). See Tensor's Budget: default an eighth of physical memory,
// or CERTIFY_MAX_MEMORY.

import ArgumentParser
import Tensor

struct ResourceOptions: ParsableArguments {
    @Option(name: .customLong("max-memory"),
            help: "Most memory one step may allocate from sizes in your data, e.g. 2G, 512M (default: an eighth of physical memory, or $CERTIFY_MAX_MEMORY). Larger requests exit 2 with the estimate.")
    var maxMemory: String?

    func validate() throws {
        if let m = maxMemory, Budget.parse(m) == nil {
            throw ValidationError("--max-memory must be a positive size such as 2G, 512M or 1e9, found '\(m.prefix(40))'")
        }
    }

    /// Installs the budget for this process (and, through the environment, its validating child).
    func apply() {
        if let m = maxMemory, let b = Budget.parse(m) { Budget.maxBytes = b }
    }
}
