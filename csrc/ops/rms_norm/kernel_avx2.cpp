#include "ops/rms_norm/kernel.h"
