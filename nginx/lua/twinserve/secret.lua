--[[ Comparing a secret without telling its content by the time it takes. A
plain `==` on strings returns at the first differing byte (or compares
interned pointers), so the answer's timing says how much of a guess was right.
Here every byte of the expected secret is visited whatever the guess is, each
difference XOR-accumulated, and the length compared without an early exit: the
time depends only on the expected secret's length. Arithmetic XOR, not the bit
library: the same code runs in Nginx's LuaJIT and in the unit tests' Lua 5.1. ]]

local M = {}

-- a XOR b for bytes (0..255), by their bits.
local function xor8(a, b)
    local out, bitval = 0, 1
    for _ = 1, 8 do
        local x, y = a % 2, b % 2
        out = out + ((x + y) % 2) * bitval  -- no branch on the content either
        a, b, bitval = (a - x) / 2, (b - y) / 2, bitval * 2
    end
    return out
end
M.xor8 = xor8

-- True when `given` equals `expected`, in a time that depends on #expected only.
function M.equal(given, expected)
    local diff = (#given == #expected) and 0 or 1
    for i = 1, #expected do
        diff = diff + xor8(given:byte(i) or 0, expected:byte(i))
    end
    return diff == 0
end

return M
