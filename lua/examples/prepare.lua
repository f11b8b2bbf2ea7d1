-- callPrepare hook: runs before the billing rates a call.
--   in: user (table), destination, callerid, prior, ...
--   return nil to change nothing, or a table with
--     destination = "…"   rewrite the number
--     route = <id>        force a route
--     decline = "E_…"     refuse the call ("Declined E_…")
local util = require("lib.util")

local short_codes = {
  ["112"] = "4930112",        -- emergency: fixed number
  ["1000"] = "4930123456",    -- the office switchboard
}

local premium_prefixes = { "900", "4990", "4419" }

narayana.hook("callPrepare", function(call)
  local number = util.normalize(call.destination)
  local target = short_codes[number]
  if target then
    narayana.log("info", "short code " .. number .. " -> " .. target)
    return { destination = target }
  end
  for _, prefix in ipairs(premium_prefixes) do
    if string.sub(number, 1, #prefix) == prefix then
      local user = call.user or {}
      if not user.allow_premium then
        return { decline = "E_UNROUTABLE" }
      end
    end
  end
  if number ~= call.destination then
    return { destination = number }
  end
  return nil
end)

-- callFinish hook: observe only (log long calls).
narayana.hook("callFinish", function(call)
  if (call.seconds or 0) > 3600 then
    narayana.log("warn", "long call to " .. tostring(call.destination))
  end
end)
