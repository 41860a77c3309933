#include "swiglu/kernel.h"
