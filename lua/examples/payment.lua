-- A payment handler named "voucher": checks a voucher code and tells the billing how
-- much to credit. The billing calls it with {user=…, amount="…", code="…"} and books
-- the answer; the handler itself never touches balances.
local vouchers = {
  WELCOME5 = "5.00",
  BONUS10 = "10.00",
}

narayana.handler("payment", "voucher", function(p)
  local value = vouchers[string.upper(p.code or "")]
  if not value then
    narayana.fail("E_NOT_EXIST", "unknown voucher")
  end
  local credit = narayana.money.parse(value)
  local minimum = narayana.money.parse(p.minimum or "0")
  if credit < minimum then
    narayana.fail("E_INSUFFICIENT_MONEY", "voucher below the minimum top-up")
  end
  return {
    credit = credit,                                 -- micro-units
    text = "voucher " .. p.code .. ": +" .. narayana.money.format(credit, 2),
  }
end)
