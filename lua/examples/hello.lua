-- A custom API method: hello?who=bob&n=2 answers "hi bob, hi bob".
-- Registered once at load time; the API layer binds and checks the arguments
-- (types, required, defaults) before the handler runs, and checks level too.
local util = require("lib.util")

narayana.method{
  name = "hello",
  level = 0,
  comment = "Greets someone n times",
  args = {
    { name = "who", type = "string", required = true },
    { name = "n",   type = "num",    default = "1" },
  },
  handler = function(req)
    local n = req.args.n or 1
    if n < 1 or n > 10 then
      narayana.fail("E_INVALID_ARGUMENT", "n must be 1..10")
    end
    local parts = {}
    for i = 1, n do parts[i] = "hi " .. req.args.who end
    return util.join(parts, ", ")
  end,
}

-- A method answering a structured result, priced with integer micro-units.
narayana.method{
  name = "quote",
  level = 1,
  args = {
    { name = "minutes", type = "num", required = true },
    { name = "rate",    type = "string", default = "0.05" },  -- per minute, decimal text
  },
  handler = function(req)
    local rate = narayana.money.parse(req.args.rate)
    local minutes = narayana.money.parse(tostring(req.args.minutes))
    local cost = narayana.money.mul(rate, minutes)
    local user = req.user or {}
    return {
      login = user.username,
      cost = cost,                                   -- micro-units
      display = narayana.money.format(cost, 2),       -- "0.15"
    }
  end,
}
