#include "ops/decode_attention/kernel.h"
