-- A module: required as require("lib.util"). Files below the top level are not loaded
-- by themselves; only require reaches them.
local M = {}

function M.join(list, sep)
  return table.concat(list, sep)
end

-- strip spaces, dashes, a leading + or 00 (DECISIONS §5 normalisation)
function M.normalize(number)
  number = string.gsub(number, "[%s%-]", "")
  number = string.gsub(number, "^%+", "")
  number = string.gsub(number, "^00", "")
  return number
end

return M
