// Protocol entries of the conv group of the certified op library.

import Certification
import Ops
import Tensor

let convGroupMethods: [Method] = []
