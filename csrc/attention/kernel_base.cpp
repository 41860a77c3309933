#include "attention/kernel.h"
