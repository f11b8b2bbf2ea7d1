-- HLR lookups through an HTTP service, as the sms handler "hlrlookup": sendHLR asks the
-- handlers of the number's SMS routes in priority order (method "hlr"), so put a route
-- with prefix hlrlookup first for the directions it covers. It answers
-- "OK,IMSI,MCC,MNC,LAC"; a number the network does not know is E_INVALID_SMS_TO. It
-- sends no messages: sendSMS passes on to the next route. List the service's host in
-- lua_http_allow.
local SERVICE = "https://hlr.example.com/v1/lookup"
local API_KEY = "CHANGE-ME"

-- field reads a string or number field of a flat JSON object.
local function field(json, name)
  return json:match('"' .. name .. '"%s*:%s*"([^"]*)"') or json:match('"' .. name .. '"%s*:%s*(%-?%d+)')
end

narayana.handler("sms", "hlrlookup", function(m)
  if m.method ~= "hlr" then
    narayana.fail("E_CARRIER_ERROR", "hlrlookup only looks numbers up")
  end
  local body, status = narayana.http_get(SERVICE .. "?number=" .. m.to, {Authorization = "Bearer " .. API_KEY})
  if not body then
    narayana.fail("E_CARRIER_ERROR", "HLR service unreachable: " .. tostring(status))
  end
  if status ~= 200 then
    narayana.fail("E_CARRIER_ERROR", "HLR service answered " .. tostring(status))
  end
  if field(body, "status") ~= "ok" then
    narayana.fail("E_INVALID_SMS_TO", "the network does not know " .. m.to)
  end
  return table.concat({"OK", field(body, "imsi") or "", field(body, "mcc") or "",
    field(body, "mnc") or "", field(body, "lac") or ""}, ",")
end)
