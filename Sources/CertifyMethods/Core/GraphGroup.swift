// Protocol entries of the graph group of the certified op library.

import Certification
import Ops
import Tensor

let graphGroupMethods: [Method] = []
