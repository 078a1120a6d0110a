// Protocol entries of the norm group of the certified op library.

import Certification
import Ops
import Tensor

let normGroupMethods: [Method] = []
