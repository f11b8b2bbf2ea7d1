package billing

// declareMessagingMethods declares the SMS, SIM card and GSM methods.
func (s *Service) declareMessagingMethods() {
	s.Methods.Add(
		// SMS
		method("receiveSMS", 0, s.receiveSMS, "from:string", "to:string", "text:string", "msg_handler:string"),
		method("receiveDeliveryReport", 0, s.receiveDeliveryReport, "id:string", "status:string", "msg_handler:string"),
		method("msgCallback", 0, s.msgCallback, "msisdn:string", "text:string!", "to:string"),
		method("readSMS", 1, s.readSMS, "status:num", "did:string"),
		method("sendSMS", 1, s.sendSMS, "callerid:string", "to:string!", "text:string!"),
		method("sendHLR", 1, s.sendHLR, "to:string!"),
		method("sendVoiceMessage", 1, s.sendVoiceMessage, "callerid:string", "to:string!", "text:string!"),
		method("sendSIPMessage", 1, s.sendSIPMessage, "callerid:string", "to:string!", "text:string!"),
		method("deliveryReport", 1, s.deliveryReport, "id:num!"),
		method("setDeliveryReport", 95, s.setDeliveryReport, "id:num!", "status:num!"),
		method("getSMS", 95, s.getSMS, "status:num"),
		// SIM cards
		method("getSIMList", 1, s.getSIMList, "all:bool=true", "own:bool=false"),
		method("getSIMInfo", 1, s.getSIMInfo, "iccid:string!"),
		method("bindSIM", 1, s.bindSIM, "iccid:string!", "puk1:string!", "puk2:string!"),
		method("unbindSIM", 1, s.unbindSIM, "iccid:string!"),
		method("updateSIM", 1, s.updateSIM, "iccid:string!", "owner:string", "puk1:string", "puk2:string",
			"sip_extension:string", "callback_cid:string", "directsms:num", "enabled:num"),
		method("addSIM", 33, s.addSIM, "provider:string", "msisdn:string", "iccid:string!", "puk1:string!", "puk2:string!"),
		method("deleteSIM", 33, s.deleteSIM, "iccid:string!"),
		method("notifySIM", 50, s.notifySIM, "sim:string!", "from:string!", "text:string!"),
		// GSM
		method("gsmRequest", 0, s.gsmRequest, "provider:string!", "action:string=Default"),
	)
}
