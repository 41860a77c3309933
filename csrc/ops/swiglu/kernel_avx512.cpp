#include "ops/swiglu/kernel.h"
