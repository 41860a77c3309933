#include "decode_attention/kernel.h"
