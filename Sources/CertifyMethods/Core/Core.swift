// The certified op library's protocol entries (protocols/core/*.yaml).

import Certification

let coreMethods: [Method] = [matmulMethod, softmaxMethod] + convGroupMethods + normGroupMethods + graphGroupMethods + shapeOpMethods
