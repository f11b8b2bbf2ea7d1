-- An SMS carrier with an HTTP API, as the sms handler "webprovider": an SMS route whose
-- prefix is webprovider sends through it (sendSMS calls it with method "send"), and the
-- carrier's callbacks come in through receiveDeliveryReport / receiveSMS with
-- msg_handler=webprovider. Adapt PROVIDER, API_KEY and the field names to your carrier,
-- and list its host in lua_http_allow. (Kannel needs no script: see docs/MESSAGING.md.)
local PROVIDER = "https://sms.example.com/v1"
local API_KEY = "CHANGE-ME"

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- form encodes a table as application/x-www-form-urlencoded, keys in order.
local function form(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = urlencode(k) .. "=" .. urlencode(t[k]) end
  return table.concat(out, "&")
end

narayana.handler("sms", "webprovider", function(m)
  if m.method == "send" then
    local body, status = narayana.http_post(PROVIDER .. "/messages",
      form({key = API_KEY, from = m.from, to = m.to, text = m.text}))
    if not body then
      narayana.fail("E_CARRIER_ERROR", "webprovider unreachable: " .. tostring(status))
    end
    -- This carrier answers "OK <message id>" or "ERR <reason>".
    local id = body:match("^OK%s+(%S+)")
    if status ~= 200 or not id then
      narayana.fail("E_CARRIER_ERROR", "webprovider refused: " .. body:sub(1, 100))
    end
    return {id = id} -- kept as the message's external_id; reports name it
  elseif m.method == "report" then
    -- receiveDeliveryReport?msg_handler=webprovider&message_id=…&state=DELIVRD
    return {id = m.params.message_id, status = m.params.state}
  elseif m.method == "receive" then
    -- receiveSMS?msg_handler=webprovider&msisdn=…&shortcode=…&body=…
    return {from = m.params.msisdn, to = m.params.shortcode, text = m.params.body}
  end
  narayana.fail("E_CARRIER_ERROR", "webprovider does not do " .. tostring(m.method))
end)
